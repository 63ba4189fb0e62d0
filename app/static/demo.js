// The demo page: talks to this service's own /predict and /model, renders with textContent only.
"use strict";

const $ = (id) => document.getElementById(id);

async function callApi(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const payload = await response.json();
  if (!response.ok) {
    const err = payload.error || { code: String(response.status), message: response.statusText };
    throw Object.assign(new Error(err.message), { code: err.code });
  }
  return payload;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const percent = (p) => `${(100 * p).toFixed(1)}%`;

function showError(err) {
  const box = $("error");
  box.replaceChildren(element("code", "", err.code || "error"), document.createTextNode(` ${err.message}`));
  box.hidden = false;
}

function labelBadge(label) {
  return element("span", `label ${label}`, label);
}

function renderPrediction(prediction) {
  const label = $("label");
  label.textContent = prediction.label;
  label.className = `label ${prediction.label}`;
  const rows = Object.entries(prediction.probabilities).flatMap(([name, p]) => {
    const fill = element("div", `fill ${name}`);
    fill.style.width = percent(p);
    const track = element("div", "track");
    track.append(fill);
    return [element("span", "name", name), track, element("span", "pct", percent(p))];
  });
  $("probabilities").replaceChildren(...rows);
  if (prediction.explanation) renderExplanation(prediction);
  $("result").hidden = false;
}

// An explanation line that is a score of the whole tweet ("lexicon: sum of valence"), not words of it: in n-grams a ":" is a token of its own.
const isScore = (feature) => /\S: /.test(feature);
const isSummary = (feature) => /^\((intercept|\d+ other features)\)$/.test(feature);
const signed = (weight) => `${weight >= 0 ? "+" : "−"}${Math.abs(weight).toFixed(3)}`;

// The words of an n-gram as the explanation shows it: "not … good" is the word "good", negated.
function ngramWords(feature) {
  return feature.replace(/^not … /, "").replace(/ … but$/, "").split(" ");
}

// How a piece of the typed tweet appears in the features: lower case, no surrounding punctuation, placeholders as the API names them.
function wordKey(piece) {
  if (/^@\w/.test(piece)) return "@user";
  if (/^(https?:\/\/|www\.)/i.test(piece)) return "URL";
  if (/^[:;=8][-^']?[)\]}dDpP*3>]$/.test(piece)) return ":)";
  if (/^[:;=][-']?[(\[{/\\|@]$/.test(piece)) return ":(";
  return piece.toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}']+$/gu, "").replace(/^#/, "");
}

// word → [total weight of the n-grams it is part of, those n-grams as "feature +weight" lines]
function wordWeights(explanation) {
  const weights = new Map();
  for (const { feature, weight } of explanation) {
    if (isScore(feature) || isSummary(feature)) continue;
    for (const word of new Set(ngramWords(feature))) {
      const [total, lines] = weights.get(word) || [0, []];
      weights.set(word, [total + weight, [...lines, `${feature} ${signed(weight)}`]]);
    }
  }
  return weights;
}

function legendMark(className, sign, text) {
  const mark = element("mark", className, text);
  mark.append(element("sup", "", sign));
  return mark;
}

function renderExplanation(prediction) {
  const label = prediction.label;
  $("legend").replaceChildren(legendMark(`toward ${label}`, "+", `pushed toward ${label}`),
                              legendMark("against", "−", `pushed away from ${label}, toward the others`));
  const weights = wordWeights(prediction.explanation);
  const pieces = prediction.text.split(/(\s+)/).map((piece) => {
    const key = wordKey(piece);
    const found = weights.get(key) || (key.endsWith("s") ? weights.get(key.slice(0, -1)) : undefined);  // "photos": the lemma "photo"
    if (!piece.trim() || !found || found[0] === 0) return document.createTextNode(piece);
    const [total, lines] = found;
    const mark = legendMark(total > 0 ? `toward ${label}` : "against", total > 0 ? "+" : "−", piece);
    mark.title = lines.join("\n");
    return mark;
  });
  $("highlighted").replaceChildren(...pieces);
  const rows = prediction.explanation.map(({ feature, weight }) => {
    const row = element("tr");
    row.append(element("td", "", feature), element("td", "weight", signed(weight)));
    return row;
  });
  $("parts").tBodies[0].replaceChildren(...rows);
  $("explanation").hidden = false;
}

// The single tweet with its explanation; a model that cannot explain (the accurate tier) is asked again without.
async function predictExplained(text) {
  $("explanation").hidden = true;
  $("no-explanation").hidden = true;
  try {
    return await callApi("/predict", { text, explain: true });
  } catch (err) {
    if (err.code !== "explain_unsupported") throw err;
    $("no-explanation").textContent = err.message;
    $("no-explanation").hidden = false;
    return callApi("/predict", { text });
  }
}

function renderBatch(predictions) {
  const rows = predictions.map((prediction) => {
    const stack = element("div", "stack");
    stack.title = Object.entries(prediction.probabilities).map(([name, p]) => `${name} ${percent(p)}`).join(", ");
    for (const [name, p] of Object.entries(prediction.probabilities)) {
      const part = element("div", `fill ${name}`);
      part.style.width = percent(p);
      stack.append(part);
    }
    const row = element("tr");
    const cells = [element("td", "", prediction.text), element("td"), element("td")];
    cells[1].append(labelBadge(prediction.label), element("span", "confidence", percent(prediction.probabilities[prediction.label])));
    cells[2].append(stack);
    row.append(...cells);
    return row;
  });
  const table = $("batch-results");
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = false;
}

function batchTexts() {
  return $("batch-texts").value.split("\n").map((line) => line.trim()).filter((line) => line.length > 0);
}

async function submit(event, button, work) {
  event.preventDefault();
  $("error").hidden = true;
  button.disabled = true;
  try {
    await work();
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

async function showModelInfo() {
  try {
    const manifest = await callApi("/model");
    const recall = manifest.metrics && manifest.metrics.macro_recall;
    const onLaterTweets = Boolean(manifest.metrics && String(manifest.metrics.split || "").startsWith("temporal"));
    const parts = [
      `model ${manifest.sha256.slice(0, 12)}`,
      `trained ${String(manifest.created).slice(0, 10)}`,
      manifest.training_data && manifest.training_data.rows ? `${manifest.training_data.rows.toLocaleString("en")} tweets` : null,
      typeof recall === "number" ? `macro recall ${recall.toFixed(3)}${onLaterTweets ? " on later tweets" : ""}` : null,
      manifest.versions && manifest.versions["scikit-learn"] ? `scikit-learn ${manifest.versions["scikit-learn"]}` : null,
    ];
    $("model-info").replaceChildren(...parts.filter(Boolean).flatMap((part, i) => [i ? " · " : "", element("span", "", part)]));
  } catch (err) {
    $("model-info").textContent = `model details unavailable: ${err.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("single-form").addEventListener("submit", (event) =>
    submit(event, $("predict"), async () => renderPrediction(await predictExplained($("text").value))));
  $("batch-form").addEventListener("submit", (event) =>
    submit(event, $("predict-batch"), async () => renderBatch((await callApi("/predict", { texts: batchTexts() })).predictions)));
  $("text").addEventListener("input", () => { $("text-count").textContent = `${$("text").value.length} characters`; });
  $("batch-texts").addEventListener("input", () => { $("batch-count").textContent = `${batchTexts().length} tweets`; });
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("single-form").requestSubmit();
  });
  showModelInfo();
});

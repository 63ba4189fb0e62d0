"""Packaging for sentiment-nb. Every setting comes from `settings.ini` (nbdev 2 convention)."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

def reqs(key): return cfg.get(key, '').split()

lib, app = cfg['lib_path'], cfg['app_path']  # the library, and the web service that serves it

setuptools.setup(
    name=cfg['repo'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=Path('README.md').read_text(encoding='utf-8') if Path('README.md').exists() else '',
    long_description_content_type='text/markdown',
    author=cfg['author'],
    author_email=cfg['author_email'],
    license='Apache-2.0',  # an SPDX expression, which replaces the licence classifier
    keywords=cfg['keywords'],
    url=cfg['git_url'],
    project_urls={'Source': cfg['git_url']},
    classifiers=[
        'Development Status :: 3 - Alpha',
        'Intended Audience :: Developers',
        'Natural Language :: English',
        'Programming Language :: Python :: 3.11',
    ],
    package_dir={'': '.'},  # the packages sit at the top: an editable install is one .pth line, and says nothing
    packages=[*setuptools.find_packages(include=[lib, f'{lib}.*']), app, f'{app}.static'],
    package_data={app: ['gunicorn.conf.py'], f'{app}.static': ['*']},  # the server settings, the demo page
    include_package_data=True,
    python_requires='>=' + cfg['min_python'],
    install_requires=reqs('requirements'),
    extras_require={'dev': reqs('dev_requirements'), 'scale': reqs('scale_requirements'),
                    'train_accurate': reqs('train_accurate_requirements')},
    entry_points={
        'console_scripts': cfg['console_scripts'].split(),
        'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
    zip_safe=False,
)

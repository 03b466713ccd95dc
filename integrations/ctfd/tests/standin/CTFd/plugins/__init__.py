"""CTFd.plugins: plugin discovery and the registration helpers, as in CTFd 3.7.

Plugins are folders in ``app.plugins_dir`` imported as ``CTFd.plugins.<folder>``; the stand-in
adds that directory to this package's path (CTFd's plugins live inside the package itself)."""
import importlib
import os
from collections import namedtuple

from flask import current_app as app
from flask import send_from_directory

Menu = namedtuple("Menu", ["title", "route", "link_target"])


def register_plugin_assets_directory(app, base_path, admins_only=False, endpoint=None):
    base_path = base_path.strip("/")
    if endpoint is None:
        endpoint = base_path.replace("/", ".")
    directory = os.path.join(app.ctfd_root, base_path)

    def assets_handler(path):
        return send_from_directory(directory, path)

    app.add_url_rule(rule="/" + base_path + "/<path:path>", endpoint=endpoint, view_func=assets_handler)


def register_admin_plugin_menu_bar(title, route, link_target=None):
    app.admin_plugin_menu_bar.append(Menu(title=title, route=route, link_target=link_target))


def register_user_page_menu_bar(title, route, link_target=None):
    app.plugin_menu_bar.append(Menu(title=title, route=route, link_target=link_target))


def bypass_csrf_protection(f):
    f._bypass_csrf = True
    return f


def init_plugins(app):
    app.admin_plugin_menu_bar = []
    app.plugin_menu_bar = []
    if app.plugins_dir not in __path__:
        __path__.append(app.plugins_dir)
    for name in sorted(os.listdir(app.plugins_dir)):
        if name.startswith((".", "_")) or not os.path.isdir(os.path.join(app.plugins_dir, name)):
            continue
        module = importlib.import_module("." + name, package="CTFd.plugins")
        module.load(app)
    app.jinja_env.globals.update(get_admin_plugin_menu_bar=lambda: app.admin_plugin_menu_bar)
    app.jinja_env.globals.update(get_user_page_menu_bar=lambda: app.plugin_menu_bar)

"""stasis_sdk: helpers for stasis plugins written in Python (built with componentize-py).

Wraps the bindings componentize-py generates for the stasis WIT (`wit_world`): log helpers,
diagnostics, plugin errors, delivery paths, the `template` and `process` capabilities and
JUnit counts (use `wit_world.imports.http` / `.upload` directly in deploy targets). A capability the plugin's world does not import is None here;
calling its helper raises a plugin error instead of failing at build time.

Install it (``pip install stasis-sdk``, or the wheel ``python -m build`` makes from sdk/python)
in the venv your plugin builds in — ``stasis plugin new --lang python`` writes a
requirements.txt that does — and build with ``stasis plugin build`` (which runs
``componentize-py -d wit -w <world> componentize app -o plugin.wasm`` with the venv's
site-packages on the path).
"""

from typing import List, Optional, Tuple
import xml.etree.ElementTree as ElementTree

from componentize_py_types import Err
from wit_world.imports import log as _log
from wit_world.imports.stasis_plugin_types import (
    Delivery,
    Diagnostic,
    JunitCounts,
    PluginError_Failed,
    PluginError_InvalidInput,
    PluginError_Unsupported,
    Severity,
)

# Imported at the top level on purpose: componentize-py resolves imports when it builds.
try:
    from wit_world.imports import template as _template
except ImportError:
    _template = None
try:
    from wit_world.imports import process as _process
except ImportError:
    _process = None


# --- log -------------------------------------------------------------------------------

def trace(message: str) -> None:
    _log.log(_log.Level.TRACE, message)


def debug(message: str) -> None:
    _log.log(_log.Level.DEBUG, message)


def info(message: str) -> None:
    _log.log(_log.Level.INFO, message)


def warn(message: str) -> None:
    _log.log(_log.Level.WARN, message)


def error(message: str) -> None:
    _log.log(_log.Level.ERROR, message)


# --- diagnostics and errors ------------------------------------------------------------

def diagnostic(severity: Severity, message: str, section: Optional[str] = None,
               key: Optional[str] = None) -> Diagnostic:
    return Diagnostic(severity=severity, message=message, section=section, key=key)


def error_at(message: str, section: Optional[str] = None, key: Optional[str] = None) -> Diagnostic:
    """An error diagnostic: the delivery does not run."""
    return diagnostic(Severity.ERROR, message, section, key)


def warning_at(message: str, section: Optional[str] = None, key: Optional[str] = None) -> Diagnostic:
    """A warning diagnostic: shown, the delivery runs."""
    return diagnostic(Severity.WARNING, message, section, key)


def info_at(message: str, section: Optional[str] = None, key: Optional[str] = None) -> Diagnostic:
    """A note."""
    return diagnostic(Severity.INFO, message, section, key)


def fail(message: str) -> Err:
    """``raise fail("...")``: the plugin tried and failed (plugin-error.failed)."""
    return Err(PluginError_Failed(message))


def invalid(message: str) -> Err:
    """``raise invalid("...")``: the inputs are not acceptable (plugin-error.invalid-input)."""
    return Err(PluginError_InvalidInput(message))


def unsupported(message: str) -> Err:
    """``raise unsupported("...")``: not handled by this plugin (plugin-error.unsupported)."""
    return Err(PluginError_Unsupported(message))


def cap_reason(err: Err) -> str:
    """The host's reason from a capability's ``Err(CapError_...)``, in words."""
    value = getattr(err, "value", err)
    kind = type(value).__name__.replace("CapError_", "").lower()
    detail = getattr(value, "value", None)
    return f"{kind}: {detail}" if detail else kind


# --- delivery ----------------------------------------------------------------------------

def storage(delivery: Delivery, name: str) -> Optional[str]:
    """A storage location (tmpdir, delivery_dir, results_dir, ...) as a guest path."""
    for key, path in delivery.storage:
        if key == name:
            return path
    return None


def _rebase(path: str, old: str, new: str) -> Optional[str]:
    old = old.rstrip("/")
    if path == old or path.startswith(old + "/"):
        return new.rstrip("/") + path[len(old):]
    return None


def guest_path(delivery: Delivery, host: str) -> Optional[str]:
    """The /delivery path of a host path inside the delivery tree (None outside it)."""
    return _rebase(host, delivery.host_root, delivery.root)


def host_path(delivery: Delivery, guest: str) -> Optional[str]:
    """The host path of a /delivery path (for child-process arguments)."""
    return _rebase(guest, delivery.root, delivery.host_root)


# --- capabilities ------------------------------------------------------------------------

def render(text: str) -> str:
    """Render ``text`` with the delivery's template engine; a capability error fails the call."""
    if _template is None:
        raise unsupported("this plugin's world does not import stasis:host/template")
    try:
        return _template.render(text)
    except Err as err:
        raise fail(f"template {text!r}: {cap_reason(err)}")


def run(program: str, *args: str, env: Optional[List[Tuple[str, str]]] = None,
        cwd: Optional[str] = None, timeout_ms: Optional[int] = None,
        secrets: Optional[List[str]] = None, stdin: Optional[bytes] = None):
    """Run a granted program through the host (no shell). Returns the host's Output."""
    if _process is None:
        raise unsupported("this plugin's world does not import stasis:host/process")
    command = _process.Command(program=program, args=list(args), env=list(env or []),
                               secrets=list(secrets or []), cwd=cwd, timeout_ms=timeout_ms,
                               stdin=stdin)
    try:
        return _process.run(command)
    except Err as err:
        raise fail(f"{program}: {cap_reason(err)}")


def junit_counts(xml_text: str) -> Optional[JunitCounts]:
    """Counts summed over every <testsuite> of a JUnit report; None when there is none."""
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError:
        return None
    suites = [root] if root.tag == "testsuite" else root.findall(".//testsuite")
    if not suites:
        return None
    total = [0, 0, 0, 0]
    for suite in suites:
        for i, name in enumerate(("tests", "failures", "errors", "skipped")):
            try:
                total[i] += int(suite.get(name, "0"))
            except ValueError:
                return None
    return JunitCounts(tests=total[0], failures=total[1], errors=total[2], skipped=total[3])

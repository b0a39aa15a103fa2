"""The free-threaded recipe test: import every extension module; the GIL must stay off.

Shipped into each compiled recipe as ``ftforge_gil_check.py`` and run by the
recipe's test in the free-threaded environment. A module without ``Py_mod_gil``
makes CPython re-enable the GIL with a RuntimeWarning when it is imported; the
script imports extension modules one at a time and names the first that does
it. It also refuses shipped modules built for another ABI (``.abi3.so`` where
the interpreter has no stable ABI, a GIL-ABI ``.cpython-3XY-`` module), and,
with ``--require-extensions``, a package whose build declares extension modules
but ships none (a silent "falling back to pure Python" build).
Every fact comes from the running interpreter (sysconfig), not from a table.
"""

FILE_NAME = "ftforge_gil_check.py"

SCRIPT = '''"""ftforge: the GIL must stay disabled after importing every extension module."""
import argparse
import importlib
import importlib.util
import pathlib
import sys
import sysconfig
import warnings

parser = argparse.ArgumentParser()
parser.add_argument("packages", nargs="+")
parser.add_argument("--allow-gil", action="store_true",
                    help="the recipe declares gil_reenabled_ok: report, do not fail")
parser.add_argument("--require-extensions", action="store_true",
                    help="the build declares extension modules: at least one must ship")
parser.add_argument("--declared", default="",
                    help="comma-separated extension modules the build files declare")
args = parser.parse_args()

if not sysconfig.get_config_var("Py_GIL_DISABLED"):
    sys.exit("ftforge_gil_check: not a free-threaded interpreter")
ext_suffix = sysconfig.get_config_var("EXT_SUFFIX")          # .cpython-313t-x86_64-linux-gnu.so
gil_suffix = ext_suffix.replace("t-", "-", 1)                # .cpython-313-x86_64-linux-gnu.so
stable_ok = sys.version_info >= (3, 15)                      # abi3t (PEP 803)
problems = []
modules = []
extensions = []
for name in args.packages:
    spec = importlib.util.find_spec(name)
    if spec is None:
        problems.append(f"{name}: not importable")
        continue
    roots = list(spec.submodule_search_locations or [])
    if not roots:  # a single-file module: import it (and whatever it imports) by name
        modules.append(name)
        if (spec.origin or "").endswith((ext_suffix, ".abi3t.so")):
            extensions.append(name)
        continue
    for root in roots:
        for path in sorted(pathlib.Path(root).rglob("*.so")):
            rel = path.relative_to(pathlib.Path(root).parent)
            if path.name.endswith(gil_suffix):
                problems.append(f"{rel}: built for the GIL ABI ({gil_suffix})")
            elif path.name.endswith(".abi3.so") and not stable_ok:
                problems.append(f"{rel}: stable-ABI module in a free-threaded package "
                                f"(Python {sys.version_info[0]}.{sys.version_info[1]}t has no stable ABI)")
            elif path.name.endswith(ext_suffix) or path.name.endswith(".abi3t.so"):
                dotted = ".".join(rel.with_name(path.name.split(".")[0]).parts)
                modules.append(dotted)
                extensions.append(dotted)

reenabled = []
for module in modules:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = sys._is_gil_enabled()
        try:
            importlib.import_module(module)
        except ImportError as exc:
            if "does not define module export function" in str(exc):
                print(f"ftforge_gil_check: {module} is a shared library, not an extension "
                      "module (loaded with ctypes); skipped")
                continue
            raise
        if not before and sys._is_gil_enabled():
            reenabled.append(module)
            detail = "; ".join(str(w.message) for w in caught if w.category is RuntimeWarning)
            print(f"ftforge_gil_check: importing {module} re-enabled the GIL: {detail}")
            if args.allow_gil:
                break

print(f"ftforge_gil_check: {len(extensions)} extension module(s) imported: "
      f"{', '.join(extensions) or '-'}")
declared = [d for d in args.declared.split(",") if d]
shipped = {e.rsplit(".", 1)[-1] for e in extensions}
missing = [d for d in declared if d.rsplit(".", 1)[-1] not in shipped]
if missing:
    print(f"ftforge_gil_check: declared but not shipped: {', '.join(missing)}")
if args.require_extensions and not extensions:
    problems.append("the build declares extension modules but the package ships none "
                    f"({', '.join(declared) or 'see the recipe header'}): it fell back to pure "
                    "Python; the build log says why (a missing header or library). If the "
                    "package means to, declare pure_build_ok with a reason in the recipe")
for problem in problems:
    print(f"ftforge_gil_check: {problem}")
if reenabled and not args.allow_gil:
    problems.append(f"the GIL was re-enabled by {reenabled[0]} (no Py_mod_gil slot); fix the "
                    f"module or declare gil_reenabled_ok with a reason in the recipe")
if problems:
    sys.exit("ftforge_gil_check: FAILED: " + problems[-1])
print(f"ftforge_gil_check: ok, sys._is_gil_enabled() = {sys._is_gil_enabled()}")
'''

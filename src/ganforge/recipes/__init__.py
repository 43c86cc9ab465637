"""One file per GAN family; importing this package imports (and so registers) every module in it."""
import importlib
import pkgutil

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

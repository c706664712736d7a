"""Builds the proxy's C head scanner (spaces/proxy/_scan.c). Optional: where no C compiler is found, the install
goes on and the proxy uses the same checks in Python (spaces/proxy/http1.py)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("spaces.proxy._scan", ["spaces/proxy/_scan.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"])])

"""The debugger's built-in commands (`?`, `d*`, `e*`, `dt`); the dispatcher imports every module
here, and each registers itself with `@command`."""

"""The built-in lint rules, one per module; each module's docstring documents its rule."""

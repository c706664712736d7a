"""Pure domain: dataclasses, enums, parsing and arithmetic. No I/O beyond what a caller hands in, no SDK imports."""

"""The ``revoker`` command line: ``main`` parses and dispatches, ``common`` holds what
every command shares (exit codes, errors, output, the HTTP runner), and each other
module is one group of commands that imports only ``common`` and the library."""

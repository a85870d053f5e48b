"""``python -m recon`` is the ``recon`` command."""

if __name__ == "__main__":
    import os
    import sys

    try:
        from recon.cli import main
    except KeyboardInterrupt:  # Ctrl-C before recon.cli could install its handler
        sys.stderr.write("error: interrupted while starting; nothing was written\n")
        os._exit(130)
    main(prog_name="recon")

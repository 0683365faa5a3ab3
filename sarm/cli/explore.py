"""`sarm explore`: a local web page of a dataset's episodes, progress, weights and annotation spans."""

from __future__ import annotations

import sys

from sarm.cli.common import add_dataset_args, open_from_args


def add_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "explore",
        help="a local web page to watch episodes beside their progress, weights and annotation spans",
        formatter_class=fmt,
    )
    add_dataset_args(p)
    p.add_argument(
        "--progress", help="a progress file of this dataset (sarm_progress.parquet or scores/<name>.parquet)"
    )
    p.add_argument("--weights", help="a rabc_weights.parquet of this dataset (from `rabc weights`)")
    p.add_argument("--chunk-size", type=int, help="the RA-BC chunk size the weights were computed with")
    p.add_argument(
        "--annotations", help="where the annotation columns are read (default: the dataset's meta/episodes)"
    )
    p.add_argument(
        "--export-dir", help="where the page's keep / drop export is written (default: the dataset root)"
    )
    p.add_argument("--repo-id", help="the dataset's Hub repo id, named in the export's LeRobot command")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; another than 127.0.0.1 warns")
    p.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(run=run)


def run(args) -> int:
    from sarm.explore import Catalog, ExploreServer

    if args.chunk_size is not None and args.chunk_size <= 0:
        raise ValueError(f"--chunk-size should be a positive integer, but got {args.chunk_size}")
    if args.export_dir is not None:
        from rabc.files import check_output_dir

        check_output_dir(args.export_dir, "--export-dir")
    catalog = Catalog(open_from_args(args), args.progress, args.weights, args.annotations, args.chunk_size)
    if catalog.progress_format:
        print(catalog.progress_format, file=sys.stderr)
    catalog.episode_columns_json()  # the table's columns are computed once, before the page asks
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"sarm explore: warning: binding {args.host} lets other machines reach this server; "
            "anyone with the URL's token can read the dataset",
            file=sys.stderr,
        )
    try:
        server = ExploreServer(
            catalog, args.host, args.port, export_dir=args.export_dir, repo_id=args.repo_id
        )
    except OSError as err:
        raise RuntimeError(f"cannot listen on {args.host}:{args.port} ({err}); pick another --port") from None
    print(server.url, flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("sarm explore: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0

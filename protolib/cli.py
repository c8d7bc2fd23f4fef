"""Command line: ``protolib <command>`` (also ``python -m protolib``)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from protolib import __version__


def _validate_config(args: argparse.Namespace) -> int:
    # here: the config module and yaml load only for validate-config
    from protolib.config import ConfigError, load

    try:
        config = load(args.config)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    runs = ", ".join(f"{r['dataset']}/{r['model']}" for r in config["runs"])
    print(
        f"{args.config}: valid ({runs}; methods {', '.join(config['selection']['methods'])}; "
        f"M {config['selection']['M']})"
    )
    return 0


# ----------------------------------------------------------------------------- rank
RANK_EPILOG = """\
outputs (in --out): ranking.csv (every image, most prototypical first: rank, kNN and core-set
distances), coreset.csv/.json (M prototypes covering the typical images: the typical selector), atypical.csv (the
--n-atypical most atypical: long-tail or corrupted images), contact_sheet.png, summary.json; with
--val-normal/--val-anomalous also subsets/{greedy,evolutionary}.csv/.json and val_auroc.csv.
Features: --backbone pixels (the default without --weights: raw pixels, no network needed) or a
torchvision ResNet (resnet18, resnet50, resnet152, wide_resnet50_2) with --weights imagenet
(torchvision download/cache), a local state_dict file, or none (random, for testing only).
Models other than knn rank by their backbone's pooled features.
--out is written only at the end of a run, summary.json last: without summary.json it holds no
complete result. A second run into the same --out while one runs is refused.
exit status: 0 done, 2 bad input (missing or empty folder, M too large, unreadable image with
--on-error fail, bad option, --out unusable or in use by another run), 130 interrupted (Ctrl-C)."""


def _model_option(text: str) -> tuple[str, object]:
    # here: yaml only to parse a --model-option value
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        reason = " ".join(str(getattr(err, "problem", None) or err).split())
        raise argparse.ArgumentTypeError(f"{key.strip()}: {value!r} is not a YAML value ({reason})") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _seed(text: str) -> int:
    # here: the bound lives with the rank options, loaded only for rank
    from protolib.rank.options import MAX_SEED

    value = _non_negative(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SEED} (2**32 - 1), got {value}")
    return value


def _rank(args: argparse.Namespace) -> int:
    """Ctrl-C, or SIGTERM (``kill``, a scheduler's time limit), prints one line saying what --out
    holds (exit 130), not a traceback; the run's staging folder is removed on the way out."""
    signal.signal(signal.SIGTERM, _as_interrupt)
    try:
        return _rank_run(args)
    except KeyboardInterrupt:
        print(_interrupted(args.out), file=sys.stderr, flush=True)
        return 130


def _as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupted(out: str) -> str:
    """A run's outputs are moved into --out together at its end, summary.json last (protolib.rank.out_folder)."""
    if out and os.path.isfile(os.path.join(out, "summary.json")):
        return (
            f"interrupted; {out!r} holds a complete result, the one its summary.json describes "
            "(a run moves its outputs in only at its end)"
        )
    return f"interrupted; {out!r} holds no complete result (summary.json absent)"


def _rank_run(args: argparse.Namespace) -> int:
    # here: rank pulls pandas (~0.5 s); the other subcommands skip it
    from protolib.rank import RankError, RankOptions, rank_folder

    options = RankOptions(
        model=args.model,
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        M=args.M,
        n_atypical=args.n_atypical,
        neighbours=args.neighbours,
        coreset_exclude=args.coreset_exclude,
        pca=args.pca,
        val_normal=args.val_normal,
        val_anomalous=args.val_anomalous,
        population=args.population,
        generations=args.generations,
        candidates=args.candidates,
        device=args.device,
        batch_size=args.batch_size,
        seed=args.seed,
        on_error=args.on_error,
        model_options=dict(args.set or []),
        contact_sheet=not args.no_contact_sheet,
        progress=False if args.quiet else None,
        knn_index=args.knn_index,
    )
    try:
        result = rank_folder(args.images_dir, args.out, options)
    except RankError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


def _add_rank(commands: argparse._SubParsersAction) -> None:
    rank = commands.add_parser(
        "rank",
        help="rank the images of a folder from prototypical to long-tail (no labels, no Snakemake)",
        description="Rank every image of IMAGES_DIR (PNG/JPEG/TIFF/BMP files, subfolders included) by\n"
        "label-free typicality, pick M prototypes covering the typical images and list the most\n"
        "atypical (long-tail or corrupted) ones. With labelled val folders also the paper's greedy\n"
        "and evolutionary subsets and their val AUROC. No labels, no Snakemake.",
        epilog=RANK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rank.add_argument("images_dir", metavar="IMAGES_DIR", help="folder of normal (unlabelled) images")
    rank.add_argument(
        "--out",
        "-o",
        required=True,
        metavar="DIR",
        help="output folder (created); must lie outside IMAGES_DIR and the val folders",
    )
    _add_rank_model(rank)
    _add_rank_selection(rank)
    _add_rank_val(rank)
    _add_rank_run(rank)
    rank.set_defaults(func=_rank)


def _add_rank_model(rank: argparse.ArgumentParser) -> None:
    """The model and how images are embedded."""
    rank.add_argument("--model", default="knn", help="detector: knn (default), panda, patchcore, fae or rd")
    rank.add_argument(
        "--backbone",
        default=None,
        help="feature extractor: pixels, resnet18, resnet50, resnet152, wide_resnet50_2 (default: "
        "pixels for knn without --weights, else the paper's backbone of the model)",
    )
    rank.add_argument(
        "--weights",
        default=None,
        metavar="imagenet|none|PATH",
        help="backbone weights: imagenet (torchvision download/cache), none (random) or a state_dict file",
    )
    rank.add_argument(
        "--image-size",
        type=_positive,
        default=None,
        help="images are resized to this square size (default 64 for pixels, 224 for a ResNet)",
    )


def _add_rank_selection(rank: argparse.ArgumentParser) -> None:
    """The core-set, typicality and atypical list."""
    rank.add_argument("-M", type=_positive, default=10, dest="M", help="core-set / subset size (default 10)")
    rank.add_argument(
        "--n-atypical", type=_non_negative, default=10, help="how many atypical images to list (default 10)"
    )
    rank.add_argument("--neighbours", "-k", type=_positive, default=5, help="k of the kNN typicality score (default 5)")
    rank.add_argument(
        "--coreset-exclude",
        type=_non_negative,
        default=None,
        help="leave this many images of largest kNN distance out of the core-set's cover "
        "(default: --n-atypical, at most a tenth of the images; 0 = every image)",
    )
    rank.add_argument(
        "--pca",
        type=_non_negative,
        default=None,
        help="typicality and core-set on this many principal components (default: the features as they are)",
    )
    rank.add_argument(
        "--knn-index",
        choices=("flat", "ivf"),
        default="flat",
        help="kNN search: flat (exact, default) or ivf (faiss inverted file: faster on very large "
        "folders, approximate; its recall is printed and recorded)",
    )


def _add_rank_val(rank: argparse.ArgumentParser) -> None:
    """Labelled val folders: the paper's greedy and evolutionary subsets."""
    rank.add_argument("--val-normal", default=None, metavar="DIR", help="labelled normal val images")
    rank.add_argument("--val-anomalous", default=None, metavar="DIR", help="labelled anomalous val images")
    rank.add_argument("--population", type=_positive, default=1000, help="evolutionary population (default 1000)")
    rank.add_argument("--generations", type=_non_negative, default=500, help="evolutionary generations (default 500)")
    rank.add_argument(
        "--candidates",
        type=_positive,
        default=None,
        help="score only this many random images one by one (default: all)",
    )


def _add_rank_run(rank: argparse.ArgumentParser) -> None:
    """Settings, device and output."""
    rank.add_argument(
        "--set",
        type=_model_option,
        action="append",
        metavar="KEY=VALUE",
        help="extra model setting (YAML value), e.g. --set k=2; repeatable",
    )
    rank.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    rank.add_argument("--batch-size", type=_positive, default=64, help="embedding batch size (default 64)")
    rank.add_argument(
        "--seed", type=_seed, default=0, help="seed of the PCA, the candidates and the selections (default 0)"
    )
    rank.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="skip",
        help="unreadable image: skip it and report its name (default), or stop",
    )
    rank.add_argument("--no-contact-sheet", action="store_true", help="do not draw contact_sheet.png")
    rank.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bars (they show only on a terminal anyway)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="protolib", description=__doc__)
    parser.add_argument("--version", action="version", version=f"protolib {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate-config", help="check a study config file without running anything")
    validate.add_argument("config")
    validate.set_defaults(func=_validate_config)
    _add_rank(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""Settings for every Argus process: environment variables with the ARGUS_ prefix, defaults that run on a laptop."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO_ROOT = Path(__file__).resolve().parent.parent
FACES_PER_IMAGE = 4  # faces per image an embedding call may carry (see max_faces_per_embed_call)


def _default_mirror() -> Path | None:
    """In a source checkout the offline model mirror sits beside it, in ../shared/models."""
    candidate = _REPO_ROOT.parent / "shared" / "models"
    return candidate if candidate.is_dir() else None


def _default_data_dir() -> Path:
    return Path.home() / ".cache" / "argus"


# Unary calls each service works on at once unless ARGUS_MAX_CONCURRENT_CALLS says otherwise. By Little's law the
# calls in flight at full speed are throughput x latency; a bound far above that only queues calls until their
# deadlines pass, one near it refuses the excess at once (RESOURCE_EXHAUSTED) and keeps goodput at capacity. Set
# from bench/overload_bench.py on 2 cores: the detector and embedder need enough concurrent calls to fill a batch
# (max_batch_size 8) while another runs; a Verify holds one facedb slot for its detector and embedder calls.
# The HTTP gateway only forwards (each service bounds its own work), so its bound is on requests it holds in memory.
DEFAULT_CONCURRENT_CALLS = {"detector": 16, "embedder": 16, "facedb": 4, "jobs": 16, "gateway": 64}

# Where each gRPC service listens unless settings say otherwise, and so where clients look for it by default.
LOOPBACK = "127.0.0.1"
DEFAULT_PORTS = {"detector": 50051, "embedder": 50052, "facedb": 50053, "jobs": 50054}
DEFAULT_ADDRESSES = {service: f"{LOOPBACK}:{port}" for service, port in DEFAULT_PORTS.items()}
DEFAULT_GATEWAY_PORT = 8080


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARGUS_", env_file=".env", extra="ignore")

    # Where things live.
    data_dir: Path = Field(default_factory=_default_data_dir, description="Working data: models, databases.")
    models_dir: Path | None = Field(None, description="Verified model files; defaults to DATA_DIR/models.")
    models_mirror: Path | None = Field(
        default_factory=_default_mirror,
        description="A folder laid out like the model store to copy models from instead of downloading them.",
    )
    eval_dir: Path = Field(
        default_factory=lambda: _REPO_ROOT.parent / "shared" / "eval",
        description="Evaluation data sets (LFW, COCO, WIDER FACE); defaults to ../shared/eval beside a checkout.",
    )

    # Inference.
    device: Literal["auto", "cpu", "cuda", "tensorrt"] = Field(
        "auto", description="auto uses the GPU when one is really usable, otherwise the CPU."
    )
    require_gpu: bool = Field(False, description="Refuse to start unless inference really runs on a GPU.")
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime threads per operator; 0 lets it choose.")
    inter_op_threads: int = Field(1, ge=0, description="ONNX Runtime threads across operators.")
    ort_allow_spinning: bool = Field(
        False,
        description="Let ONNX Runtime's threads spin waiting for work. Off: measured about 3x faster forward passes "
        "with the detector and embedder processes sharing 2 cores (spinning threads take the cores the other "
        "process needs); on may win on a machine given to one model process.",
    )
    int8: bool = Field(
        False,
        description="On the CPU, run each network that has an int8 build (the manifest's quantized entries: "
        "dlib-resnet) in int8: dlib measured 2.3x faster, for 0.06 pt of LFW accuracy and 0.2 pt of DIR@FAR 1% "
        "(the README's Accuracy section). On a GPU the fp32 file always runs.",
    )
    warmup: bool = Field(True, description="Run one inference per model at start so the first request is not slow.")

    # Input limits (bad input gets INVALID_ARGUMENT, never a crash).
    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest encoded image accepted.")
    max_image_pixels: int = Field(40_000_000, gt=0, description="Largest decoded image (width x height).")
    max_images_per_request: int = Field(32, gt=0, description="Most images in one detection call.")
    max_request_pixels: int = Field(
        400_000_000,
        gt=0,
        description="Most pixels one call's images hold in all (from their headers, before decoding); at least "
        "MAX_IMAGE_PIXELS.",
    )
    max_pixels_in_flight: int = Field(
        80_000_000,
        gt=0,
        description="Most decoded pixels a server holds at once across its calls; an image that cannot get its "
        "share within 10 s gets RESOURCE_EXHAUSTED. At least MAX_IMAGE_PIXELS.",
    )
    max_message_bytes: int = Field(64 * 1024 * 1024, gt=0, description="gRPC max receive message size.")

    # Dynamic batching, as in Triton: wait at most this long to fill a batch of at most this many images.
    max_batch_size: int = Field(8, gt=0, description="Most images in one forward pass.")
    max_queue_delay_ms: float = Field(5.0, ge=0, description="Longest an image waits for others to share its pass.")
    max_queue_size: int = Field(256, gt=0, description="Images waiting beyond this get RESOURCE_EXHAUSTED.")

    # Detector.
    object_score_threshold: float = Field(0.3, ge=0, le=1, description="Default minimum objectness x class score.")
    object_nms_iou: float = Field(0.45, ge=0, le=1, description="Default class-wise NMS IoU for objects.")
    face_score_threshold: float = Field(0.6, ge=0, le=1, description="Default minimum face score.")
    face_nms_iou: float = Field(0.3, ge=0, le=1, description="Default NMS IoU for faces.")
    max_detections: int = Field(300, gt=0, description="Most detections returned per image.")
    face_max_side: int = Field(1280, ge=32, description="Face detection runs at the image's size, capped here.")
    face_refine_landmarks: bool = Field(
        True,
        description="Look at each face a second time at about 190 px to place its landmarks more precisely "
        "(better recognition, one small extra pass per face).",
    )
    liveness_threshold: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Liveness score (P(live face), 0-1) below which a face is taken for a spoof (a print or a "
        "screen) where liveness is required. 0.3 was measured to refuse both spoof samples and about 3% of real "
        "LFW photos (README, Liveness).",
    )

    # Embedder.
    flip_augmentation: bool = Field(
        True, description="Embed each face and its mirror image and average them (measured better on LFW)."
    )
    embedder_models: str = Field(
        "mobilefacenet,dlib-resnet",
        description="Comma-separated embedding networks the embedder loads; the first is used when a call names none.",
    )

    # Face database.
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the face database; defaults to SQLite at DATA_DIR/facedb.sqlite3."
    )
    database_password_file: Path | None = Field(
        None, description="File holding the database password (a container secret); it replaces the URL's password."
    )
    profile: str = Field(
        "mobilefacenet+dlib", description="Embedding profile of new collections (see `argus profiles`)."
    )
    keep_face_crops: bool = Field(
        True, description="Store each enrolled face's crop, so a collection can later be re-embedded by other models."
    )
    audit_wait_s: float = Field(
        1.0,
        gt=0,
        description="Longest a decision waits to write its audit event; an event not written by then is kept in "
        "memory and written as soon as the database takes writes.",
    )
    audit_backlog: int = Field(
        10_000, gt=0, description="Audit events kept in memory at most; when full, decisions are refused."
    )
    max_metadata_bytes: int = Field(
        4096, gt=0, description="Largest subject metadata, as compact JSON; every listing of subjects carries it."
    )
    max_metadata_depth: int = Field(4, ge=1, description="Deepest nesting of objects and lists in subject metadata.")
    max_faces_per_image: int = Field(
        64,
        gt=0,
        description="Identify embeds at most this many faces of a photo, the largest; its answer says how many it "
        "left out.",
    )
    min_face_size: int = Field(32, ge=0, description="Enrollment refuses faces whose shorter side is smaller (px).")
    min_sharpness: float = Field(
        15.0, ge=0, description="Enrollment refuses faces blurrier than this (variance of the Laplacian)."
    )
    feedback_retention_s: float = Field(
        3600.0,
        ge=0,
        description="How long a Verify or Identify answer keeps its probe face's embedding (and box and quality, "
        "never the photo) for ConfirmDecision / RejectDecision, about 1.5 KB a decision; 0 keeps nothing and turns "
        "feedback off.",
    )
    feedback_max_faces: int = Field(
        10,
        ge=0,
        description="Faces confirmed decisions may add to one subject's template; past it the most redundant of "
        "them is retired (enrolled faces never are). 0: confirmations add no face.",
    )
    feedback_max_impostors: int = Field(
        20, ge=0, description="Rejected probes kept per subject as impostor examples, the newest."
    )
    open_set_far: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="Identify's default threshold lets a stranger be taken for somebody with at most this "
        "probability, at the collection's current size.",
    )
    search_threads: int = Field(
        1, ge=1, description="FAISS threads per search; concurrent requests already use the cores (see bench)."
    )
    facedb_ann_min_faces: int = Field(
        50_000,
        ge=1,
        description="Faces from which a collection's search goes through an approximate index (FAISS IVF over PQ "
        "codes, built in the background, its candidates scored exactly) instead of exact brute force; exact again "
        "below half of this.",
    )
    facedb_ann_probe_fraction: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Share of its IVF lists an approximate search visits: more is slower and closer to exact.",
    )
    facedb_poll_s: float = Field(
        1.0,
        gt=0,
        description="How often a facedb replica reads the change log when nothing woke it (PostgreSQL wakes it at "
        "each commit with NOTIFY; this is the fallback, and how SQLite sees another process's changes).",
    )
    facedb_snapshot_s: float = Field(
        300.0,
        ge=0,
        description="How often a facedb replica saves a snapshot of each changed index (also at a clean "
        "shutdown), so that a restart loads it and catches up instead of reading every face; 0: only at shutdown.",
    )
    facedb_change_retention_s: float = Field(
        86_400.0,
        gt=0,
        description="How long the change log keeps a change; a replica whose snapshot is older rebuilds from the "
        "faces.",
    )
    calibration_dir: Path | None = Field(
        None,
        description="Folder of per-profile calibrations (<profile>.json) from `argus calibrate`; defaults to the "
        "shipped ones.",
    )

    # Jobs.
    redis_url: str = Field(f"redis://{LOOPBACK}:6379/0", description="Redis holding the job queue and job records.")
    results_dir: Path | None = Field(
        None, description="Where large job results are kept; defaults to DATA_DIR/results."
    )
    result_ttl_s: float = Field(86_400, gt=0, description="How long a finished job and its result are kept.")
    result_inline_bytes: int = Field(
        256 * 1024, ge=0, description="Results up to this size live in Redis; larger ones in RESULTS_DIR."
    )
    job_visibility_timeout_s: float = Field(
        60, gt=0, description="A job whose worker has not been heard of for this long is given to another worker."
    )
    job_max_attempts: int = Field(3, ge=1, description="Attempts before a job is failed and dead-lettered.")

    # Security and limits.
    auth: Literal["required", "off"] = Field(
        "required",
        description="required: every call needs an active API key, and with none active every call is refused. "
        "off: keys are not checked (a local first run; `argus up` chooses it when no key exists yet).",
    )
    keys_file: Path | None = Field(
        None,
        description="API keys (hashed); defaults to DATA_DIR/keys.json. Re-read when it changes; one that goes "
        "missing or cannot be read keeps the keys last read.",
    )
    denial_report_s: float = Field(
        60,
        gt=0,
        description="Refused calls are counted per key and reason and reported (log, facedb's audit trail) this often.",
    )
    api_key: str | None = Field(
        None, description="The key this process sends: the CLI's, and services' calls to others."
    )
    api_key_file: Path | None = Field(
        None, description="File holding the key this process sends (a container secret), when ARGUS_API_KEY is unset."
    )
    max_concurrent_calls: int | None = Field(
        None,
        gt=0,
        description="Unary calls a server works on at once; more get RESOURCE_EXHAUSTED at once instead of queueing. "
        "Unset: the service's default (DEFAULT_CONCURRENT_CALLS), near what it completes at full speed.",
    )
    max_open_streams: int = Field(
        512, gt=0, description="Open response streams (WatchJob) a server holds at once; more get RESOURCE_EXHAUSTED."
    )

    # TLS. A server with a certificate serves TLS only; with a client CA too it requires client certificates.
    tls_cert_file: Path | None = Field(None, description="Server certificate chain (PEM); set to serve TLS.")
    tls_key_file: Path | None = Field(None, description="Server private key (PEM).")
    tls_client_ca_file: Path | None = Field(None, description="CA of the client certificates to require (mutual TLS).")
    tls_ca_file: Path | None = Field(None, description="CA a client trusts for the servers it calls (PEM).")
    tls_client_cert_file: Path | None = Field(None, description="A client's certificate for mutual TLS (PEM).")
    tls_client_key_file: Path | None = Field(None, description="A client's private key for mutual TLS (PEM).")

    # Serving.
    host: str = Field(LOOPBACK, description="Interface the servers bind; 0.0.0.0 in containers.")
    detector_port: int = Field(DEFAULT_PORTS["detector"], description="Detector gRPC port.")
    embedder_port: int = Field(DEFAULT_PORTS["embedder"], description="Embedder gRPC port.")
    facedb_port: int = Field(DEFAULT_PORTS["facedb"], description="Face database gRPC port.")
    jobs_port: int = Field(DEFAULT_PORTS["jobs"], description="Jobs API gRPC port.")
    gateway_port: int = Field(
        DEFAULT_GATEWAY_PORT, description="HTTP port of the gateway: the Connect protocol (HTTP/JSON) and the console."
    )
    gateway_body_bytes_in_flight: int = Field(
        256 * 1024 * 1024,
        gt=0,
        description="Request bodies the gateway holds at once, in bytes; a request that does not fit waits briefly, "
        "then gets 503. Each body is also within ARGUS_MAX_MESSAGE_BYTES.",
    )
    gateway_body_timeout_s: float = Field(
        30.0, gt=0, description="How long the gateway waits for a request's whole body; a slower one gets 408."
    )
    metrics_port: int = Field(0, ge=0, description="Prometheus /metrics port; 0 turns the HTTP endpoint off.")
    health_port: int = Field(
        0, ge=0, description="A plaintext port serving only gRPC health, for probes that cannot do TLS; 0: none."
    )
    detector_address: str = Field(
        DEFAULT_ADDRESSES["detector"], description="Where clients and other services reach the detector."
    )
    embedder_address: str = Field(
        DEFAULT_ADDRESSES["embedder"], description="Where clients and facedb reach the embedder."
    )
    facedb_address: str = Field(DEFAULT_ADDRESSES["facedb"], description="Where clients reach the face database.")
    jobs_address: str = Field(DEFAULT_ADDRESSES["jobs"], description="Where clients reach the jobs API.")

    def concurrent_calls(self, service: str) -> int:
        """The unary call bound of this service ("detector", "embedder", "facedb", "jobs", "gateway")."""
        return self.max_concurrent_calls or DEFAULT_CONCURRENT_CALLS[service]

    @model_validator(mode="after")
    def _pixel_limits_fit_one_image(self) -> Settings:
        for name in ("max_request_pixels", "max_pixels_in_flight"):
            if getattr(self, name) < self.max_image_pixels:
                raise ValueError(
                    f"ARGUS_{name.upper()} ({getattr(self, name)}) is below ARGUS_MAX_IMAGE_PIXELS "
                    f"({self.max_image_pixels}): an image within the per-image limit could never be decoded"
                )
        return self

    @property
    def max_faces_per_embed_call(self) -> int:
        """A call embeds the faces found in a few photos, and a photo often holds more than one face, so the face
        limit is FACES_PER_IMAGE times the per-call image limit (32 images by default: 128 faces). It bounds the
        work one call can queue: with flip augmentation each face is two forward-pass items, so the default limit
        fills the default batch queue (256) and no further."""
        return self.max_images_per_request * FACES_PER_IMAGE

    @property
    def embedding_models(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.embedder_models.split(",") if name.strip())

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def resolved_keys_file(self) -> Path:
        return self.keys_file or self.data_dir / "keys.json"

    @property
    def resolved_results_dir(self) -> Path:
        return self.results_dir or self.data_dir / "results"

    @property
    def resolved_database_url(self) -> str:
        url = self.database_url or f"sqlite:///{self.data_dir / 'facedb.sqlite3'}"
        if self.database_password_file is None:
            return url
        from sqlalchemy.engine import make_url

        password = _secret(self.database_password_file, "ARGUS_DATABASE_PASSWORD_FILE")
        return make_url(url).set(password=password).render_as_string(hide_password=False)

    @property
    def resolved_api_key(self) -> str | None:
        if self.api_key or self.api_key_file is None:
            return self.api_key
        return _secret(self.api_key_file, "ARGUS_API_KEY_FILE")


def _secret(path: Path, setting: str) -> str:
    """A secret kept in a file (a Docker or Kubernetes secret), without its trailing newline."""
    try:
        value = path.read_text().strip()
    except OSError as error:
        raise ValueError(f"{setting}: cannot read {path}: {error.strerror}") from None
    if not value:
        raise ValueError(f"{setting}: {path} is empty")
    return value


@lru_cache
def get_settings() -> Settings:
    return Settings()

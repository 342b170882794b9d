"""How a model is loaded: context length, GPU layers, threads, batch, flash attention, mmap, mlock,
KV cache type, speculative decoding (and its draft model), with the memory that takes. Used by the
Model tab and by the model manager.

These are not sampling settings: they cannot change between two answers without loading the
model again, so the panel says so and changes nothing until its button is pressed. The values
are checked by app.core.models.library.ModelSettings; what is wrong is said under the fields.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from html import escape
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app import paths
from app.core.common.system import available_ram_bytes, default_threads
from app.core.inference.types import LoadOptions, ModelInfo
from app.core.models import drafting_plan, memory
from app.core.models.gguf_info import GGUFError, GGUFHeader
from app.core.models.library import ModelSettings
from app.core.models.library_files import LibraryError, human_size
from app.session.model_library import read_header
from app.session.tasks import Latest

GPU_MODES = (("auto", "All layers"), ("cpu", "CPU only"), ("layers", "A number of layers"))
DRAFTING_CHOICES = (("auto", "Automatic"), ("on", "Always on"), ("off", "Off"))
NO_DRAFT_MODEL = "None: prompt lookup guesses"
_DRAFTING_TIP = (
    "Speculative decoding: the model checks several guessed tokens in one pass instead of writing one "
    "token per pass, which is faster when the guesses are right. The guesses come from the conversation "
    "itself (prompt lookup: text being edited or quoted, a list being continued) or from a small draft "
    "model.\nAutomatic pauses it where too few guesses are right and tries again later, so "
    "ordinary chat costs almost nothing; Always on keeps it on; Off never guesses.\nEvery token shown "
    "is still the model's own choice: a wrong guess is thrown away.")
_DRAFT_MODEL_TIP = (
    "A small GGUF model with the same vocabulary as this one (usually a small model of the same family) "
    "that guesses the next tokens. It needs memory of its own. Without one, the guesses come from the "
    "conversation (prompt lookup).")
_CPU_ONLY_TIP = ("This llama.cpp build runs on the CPU only: build it with CUDA, Metal or Vulkan "
                 "to offload layers (see README).")


class LoadSettingsPanel(QWidget):
    apply_requested = Signal(object)  # LoadOptions

    def __init__(self, options: LoadOptions = LoadOptions(), parent=None,
                 button_text: str = "Reload with these settings") -> None:
        super().__init__(parent)
        self.setObjectName("loadSettingsPanel")
        self._options = options
        self._header: GGUFHeader | None = None
        self.model_label = QLabel("No model loaded")
        self.model_label.setWordWrap(True)
        self.context = QSpinBox()
        self.context.setRange(0, 1 << 20)
        self.context.setSingleStep(1024)
        self.context.setSpecialValueText("As trained")
        self.context.setSuffix(" tokens")
        self.context.setToolTip("How many tokens the model sees at once: the conversation and the "
                                "answer. Longer contexts use more memory (the KV cache).")
        self.gpu_mode = QComboBox()
        for key, label in GPU_MODES:
            self.gpu_mode.addItem(label, key)
        self.gpu_mode.setToolTip("Layers run on the GPU; if loading them fails, the model loads on "
                                 "the CPU and says why.")
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(1, 999)
        self.threads = QSpinBox()
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText(f"Automatic ({default_threads()})")
        self.threads.setToolTip("CPU threads for generation; automatic uses one per physical core.")
        self.batch = QSpinBox()
        self.batch.setRange(1, 65_536)
        self.batch.setToolTip("Prompt tokens processed per step: larger is faster, uses more memory.")
        self.flash_attn = QCheckBox("Flash attention")
        self.flash_attn.setToolTip("Faster attention with less memory; needed for a quantised KV cache.")
        self.mmap = QCheckBox("Map the file (mmap)")
        self.mmap.setToolTip("Read weights from the file as needed instead of copying them in.")
        self.mlock = QCheckBox("Keep in RAM (mlock)")
        self.mlock.setToolTip("Forbid the system to swap the model out.")
        self.kv_type = QComboBox()
        for name in memory.KV_BYTES_PER_VALUE:
            self.kv_type.addItem(name, name)
        self.kv_type.setToolTip("Precision of the KV cache: q8_0 halves its memory with little loss.")
        self._make_drafting_fields()
        self.estimate = QLabel("")
        self.estimate.setObjectName("memoryEstimate")
        self.estimate.setWordWrap(True)
        self.problem = QLabel("")
        self.problem.setObjectName("settingsProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #c0392b;")
        self.drafting_note = QLabel("")  # why drafting will be off or not as asked: a notice, not a problem
        self.drafting_note.setObjectName("draftingNote")
        self.drafting_note.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Context length", self.context)
        gpu_row = QHBoxLayout()
        gpu_row.addWidget(self.gpu_mode, 1)
        gpu_row.addWidget(self.gpu_layers)
        form.addRow("GPU layers", gpu_row)
        form.addRow("Threads", self.threads)
        form.addRow("Batch size", self.batch)
        form.addRow("KV cache", self.kv_type)
        form.addRow("Speculative decoding", self.drafting)
        form.addRow("Draft model", self.draft_field)  # the file's name gets the row's width...
        draft_buttons = QHBoxLayout()  # ...and its buttons the row below
        draft_buttons.addWidget(self.choose_draft)
        draft_buttons.addWidget(self.clear_draft)
        draft_buttons.addStretch(1)
        form.addRow("", draft_buttons)
        note = QLabel("Changing these reloads the model; the conversation is kept.")
        note.setWordWrap(True)
        self.apply_button = QPushButton(button_text)
        self.apply_button.setObjectName("reloadModel")
        self.fields = QWidget()  # everything but the model's name: disabled for a broken model
        fields = QVBoxLayout(self.fields)
        fields.setContentsMargins(0, 0, 0, 0)
        fields.addLayout(form)
        for box in (self.flash_attn, self.mmap, self.mlock):
            fields.addWidget(box)
        fields.addWidget(self.estimate)
        fields.addWidget(self.drafting_note)
        fields.addWidget(self.problem)
        fields.addWidget(note)
        fields.addWidget(self.apply_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(4, 6, 4, 6)
        column.addWidget(self.model_label)
        column.addWidget(self.fields)
        column.addStretch(1)
        for signal in (self.context.valueChanged, self.gpu_mode.currentIndexChanged,
                       self.gpu_layers.valueChanged, self.threads.valueChanged, self.batch.valueChanged,
                       self.flash_attn.toggled, self.mmap.toggled, self.mlock.toggled,
                       self.kv_type.currentIndexChanged, self.drafting.currentIndexChanged):
            signal.connect(self._update_state)
        self.choose_draft.clicked.connect(self.choose_draft_model)
        self.clear_draft.clicked.connect(lambda: self.set_draft_model(""))
        self.apply_button.clicked.connect(self._apply)
        self.set_options(options)

    def _make_drafting_fields(self) -> None:
        """Speculative decoding's mode, and the draft model: a file name with Choose… and Clear."""
        self.drafting = QComboBox()
        self.drafting.setObjectName("draftingMode")
        for key, label in DRAFTING_CHOICES:
            self.drafting.addItem(label, key)
        self.drafting.setToolTip(_DRAFTING_TIP)
        self._draft_model = ""  # the draft model's path; "": prompt lookup
        self._draft_headers: dict[str, GGUFHeader | GGUFError | OSError] = {}  # read off the GUI thread
        self._draft_reading = Latest("draft model header")
        reading = self._draft_reading  # not self: the panel is gone when `destroyed` comes
        self.destroyed.connect(lambda *_: reading.cancel())
        self.draft_field = QLineEdit()
        self.draft_field.setObjectName("draftModel")
        self.draft_field.setReadOnly(True)
        self.draft_field.setPlaceholderText(NO_DRAFT_MODEL)
        self.draft_field.setToolTip(_DRAFT_MODEL_TIP)
        self.choose_draft = QPushButton("Choose…")
        self.choose_draft.setObjectName("chooseDraftModel")
        self.choose_draft.setToolTip("Pick a draft model file (.gguf).")
        self.clear_draft = QPushButton("Clear")
        self.clear_draft.setObjectName("clearDraftModel")
        self.clear_draft.setToolTip("No draft model: guesses come from the conversation (prompt lookup).")

    def set_options(self, options: LoadOptions) -> None:
        """Show these settings as the ones in force (the button waits for a change)."""
        self._options = options
        self.context.setValue(options.n_ctx)
        mode = "auto" if options.n_gpu_layers < 0 else "cpu" if options.n_gpu_layers == 0 else "layers"
        self.gpu_mode.setCurrentIndex(next(i for i, (k, _) in enumerate(GPU_MODES) if k == mode))
        if options.n_gpu_layers > 0:
            self.gpu_layers.setValue(options.n_gpu_layers)
        self.threads.setValue(options.n_threads or 0)
        self.batch.setValue(options.n_batch)
        self.flash_attn.setChecked(options.flash_attn)
        self.mmap.setChecked(options.use_mmap)
        self.mlock.setChecked(options.use_mlock)
        self.kv_type.setCurrentIndex(max(self.kv_type.findData(options.kv_cache_type), 0))
        self.drafting.setCurrentIndex(max(self.drafting.findData(options.drafting), 0))
        self._draft_headers.clear()  # a model (re)loaded or chosen: read the draft model afresh
        self.set_draft_model(options.draft_model)

    def options(self) -> LoadOptions:
        mode = self.gpu_mode.currentData()
        layers = -1 if mode == "auto" else 0 if mode == "cpu" else self.gpu_layers.value()
        return LoadOptions(n_ctx=self.context.value(), n_gpu_layers=layers,
                           n_threads=self.threads.value() or None, n_batch=self.batch.value(),
                           flash_attn=self.flash_attn.isChecked(), use_mmap=self.mmap.isChecked(),
                           use_mlock=self.mlock.isChecked(), kv_cache_type=self.kv_type.currentData(),
                           drafting=self.drafting.currentData(), draft_model=self._draft_model)

    def set_draft_model(self, path: str) -> None:
        """The draft model ("" for none): shown by its file name; its header is read in a worker
        thread for the memory estimate, which shows once it is read."""
        self._draft_model = path
        self.draft_field.setText(Path(path).name if path else "")
        self.draft_field.setCursorPosition(0)  # a long name shows from its start
        self.draft_field.setToolTip(path or _DRAFT_MODEL_TIP)
        if path and _key(path) not in self._draft_headers:
            self._draft_reading.start(self._read_draft_header(path))
        self._update_state()

    def choose_draft_model(self) -> None:
        """Choose… : a GGUF file, looked for beside the current draft model, else in the models folder."""
        folder = str(Path(self._draft_model).parent) if self._draft_model else str(paths.models_dir())
        path, _ = QFileDialog.getOpenFileName(self, "Choose a draft model", folder, "GGUF models (*.gguf)")
        if path:
            self._draft_headers.pop(_key(path), None)  # chosen again: the file may have changed
            self.set_draft_model(path)

    async def _read_draft_header(self, path: str) -> None:
        try:
            found: GGUFHeader | GGUFError | OSError = await read_header(path)
        except (GGUFError, OSError) as error:
            found = error
        self._draft_headers[_key(path)] = found
        self._update_state()

    def _read_draft(self, path: Path) -> GGUFHeader:
        """drafting_plan's header reader: the header read earlier, or the reason it could not be."""
        found = self._draft_headers[_key(path)]
        if isinstance(found, GGUFHeader):
            return found
        raise found

    def set_header(self, header: GGUFHeader | None) -> None:
        """The model these settings are for: its memory estimate is shown beside them."""
        self._header = header
        self._update_state()

    def set_editable(self, editable: bool) -> None:
        """A broken model cannot load: its settings are shown greyed, not offered for editing."""
        self.fields.setEnabled(editable)

    def set_gpu_offload(self, supported: bool) -> None:
        """A llama.cpp build without a GPU backend: the GPU settings say so instead of failing."""
        if not supported:
            for widget in (self.gpu_mode, self.gpu_layers):
                widget.setEnabled(False)
                widget.setToolTip(_CPU_ONLY_TIP)

    def show_model(self, info: ModelInfo | None) -> None:
        if info is None:
            self.model_label.setText("No model loaded")
        else:
            gpu = f", {info.gpu_layers}/{info.n_layers + 1} layers on the GPU" if info.gpu_layers else ""
            self.model_label.setText(f"<b>{info.name}</b><br>{info.architecture}, context "
                                     f"{info.n_ctx:,} tokens, {info.backend}{gpu}{_drafting_line(info)}")
        self._update_state()

    def _problem(self) -> str:
        try:
            ModelSettings(**asdict(self.options()))
        except LibraryError as error:
            return error.message
        return ""

    def _update_state(self) -> None:
        self.gpu_layers.setVisible(self.gpu_mode.currentData() == "layers")
        drafting = self.drafting.currentData() != "off"
        for widget in (self.draft_field, self.choose_draft):
            widget.setEnabled(drafting)
        self.clear_draft.setEnabled(drafting and bool(self._draft_model))
        problem = self._problem()
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        self.apply_button.setEnabled(not problem and self.options() != self._options)
        estimate, note = self._estimate_text()
        self.estimate.setText(estimate)
        self.drafting_note.setText(note)
        self.drafting_note.setVisible(bool(note))

    def _estimate_text(self) -> tuple[str, str]:
        """The memory the model needs with these settings, drafting included; and what the drafting
        plan says about drafting ("" when it is as asked)."""
        header, options = self._header, self.options()
        if header is None:
            return "", ""
        n_ctx = options.n_ctx or int(header.context_length or 4096)
        reading = bool(options.draft_model) and _key(options.draft_model) not in self._draft_headers
        if reading:  # until its header is read, the estimate is prompt lookup's
            options = replace(options, draft_model="")
        available = available_ram_bytes()
        try:
            need = memory.estimate(header, n_ctx, options.n_gpu_layers, options.kv_cache_type)
            plan = drafting_plan.plan(header, n_ctx, options, available, read_header=self._read_draft)
        except ValueError:
            return "", ""
        need = replace(need, compute_ram=need.compute_ram + plan.extra_ram,
                       compute_vram=need.compute_vram + plan.extra_vram)
        verdict = memory.verdict(need, available, None)
        vram = f" + {human_size(need.vram_bytes)} GPU memory" if need.vram_bytes else ""
        share = f" ({human_size(plan.extra_ram + plan.extra_vram)} of it for drafting)" if plan.on else ""
        free = f" ({human_size(available)} free)" if available else ""
        note = "Reading the draft model…" if reading else plan.note
        return (f"Needs about {human_size(need.ram_bytes)} RAM{vram} at {n_ctx:,} tokens{share}: "
                f"{verdict}{free}."), note

    def _apply(self) -> None:
        if not self._problem():
            self.apply_requested.emit(self.options())


def _key(path: str | Path) -> str:
    """One spelling per file, as drafting_plan passes it back (a Path of the setting)."""
    return str(Path(path))


def _drafting_line(info: ModelInfo) -> str:
    """What drafts for the loaded model (ModelInfo.drafting), and why not as asked when it is not."""
    if info.remote:
        return ""
    line = f"<br>Speculative decoding: {escape(info.drafting or 'off')}"
    return line + (f"<br>{escape(info.drafting_note)}" if info.drafting_note else "")

"""How a model is loaded: context length, GPU layers, threads, batch, flash attention, mmap, mlock,
KV cache type, with the memory that takes. Used by the Model tab and by the model manager.

These are not sampling settings: they cannot change between two answers without loading the
model again, so the panel says so and changes nothing until its button is pressed. The values
are checked by app.core.models.library.ModelSettings; what is wrong is said under the fields.
"""

from __future__ import annotations

from dataclasses import asdict

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.common.system import available_ram_bytes, default_threads
from app.core.inference.types import LoadOptions, ModelInfo
from app.core.models import memory
from app.core.models.gguf_info import GGUFHeader
from app.core.models.library import ModelSettings
from app.core.models.library_files import LibraryError, human_size

GPU_MODES = (("auto", "All layers"), ("cpu", "CPU only"), ("layers", "A number of layers"))
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
        self.estimate = QLabel("")
        self.estimate.setObjectName("memoryEstimate")
        self.estimate.setWordWrap(True)
        self.problem = QLabel("")
        self.problem.setObjectName("settingsProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #c0392b;")

        form = QFormLayout()
        form.addRow("Context length", self.context)
        gpu_row = QHBoxLayout()
        gpu_row.addWidget(self.gpu_mode, 1)
        gpu_row.addWidget(self.gpu_layers)
        form.addRow("GPU layers", gpu_row)
        form.addRow("Threads", self.threads)
        form.addRow("Batch size", self.batch)
        form.addRow("KV cache", self.kv_type)
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
                       self.kv_type.currentIndexChanged):
            signal.connect(self._update_state)
        self.apply_button.clicked.connect(self._apply)
        self.set_options(options)

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
        self._update_state()

    def options(self) -> LoadOptions:
        mode = self.gpu_mode.currentData()
        layers = -1 if mode == "auto" else 0 if mode == "cpu" else self.gpu_layers.value()
        return LoadOptions(n_ctx=self.context.value(), n_gpu_layers=layers,
                           n_threads=self.threads.value() or None, n_batch=self.batch.value(),
                           flash_attn=self.flash_attn.isChecked(), use_mmap=self.mmap.isChecked(),
                           use_mlock=self.mlock.isChecked(), kv_cache_type=self.kv_type.currentData())

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
                                     f"{info.n_ctx:,} tokens, {info.backend}{gpu}")
        self._update_state()

    def _problem(self) -> str:
        try:
            ModelSettings(**asdict(self.options()))
        except LibraryError as error:
            return error.message
        return ""

    def _update_state(self) -> None:
        self.gpu_layers.setVisible(self.gpu_mode.currentData() == "layers")
        problem = self._problem()
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        self.apply_button.setEnabled(not problem and self.options() != self._options)
        self.estimate.setText(self._estimate_text())

    def _estimate_text(self) -> str:
        header, options = self._header, self.options()
        if header is None:
            return ""
        n_ctx = options.n_ctx or int(header.context_length or 4096)
        try:
            need = memory.estimate(header, n_ctx, options.n_gpu_layers, options.kv_cache_type)
        except ValueError:
            return ""
        available = available_ram_bytes()
        verdict = memory.verdict(need, available, None)
        vram = f" + {human_size(need.vram_bytes)} GPU memory" if need.vram_bytes else ""
        free = f" ({human_size(available)} free)" if available else ""
        return f"Needs about {human_size(need.ram_bytes)} RAM{vram} at {n_ctx:,} tokens: {verdict}{free}."

    def _apply(self) -> None:
        if not self._problem():
            self.apply_requested.emit(self.options())

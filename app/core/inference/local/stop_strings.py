"""Stop strings cut an answer where they begin, even when one arrives split over several tokens."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Cuts the stream at the first stop string, holding back text that may begin one."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str, final: bool = False) -> tuple[str, bool]:
        """(the text that may be shown now, whether a stop string was reached)."""
        if not self.stops:
            return text, False
        self.pending += text
        for stop in self.stops:
            at = self.pending.find(stop)
            if at != -1:
                out, self.pending = self.pending[:at], ""
                return out, True
        if final:
            out, self.pending = self.pending, ""
            return out, False
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(out):]
        return out, False

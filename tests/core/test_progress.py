import io

from diffusekit.core.progress import ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_file_gets_whole_lines_at_most_every_interval_and_the_last_one():
    stream = io.StringIO()
    line = ProgressLine(stream, interval=3600)
    for i in range(1, 6):
        line.update(f"item {i}/5")
    line.finish()
    assert stream.getvalue() == "item 1/5\nitem 5/5\n"  # the first at once, the rest held back, the last at finish


def test_log_file_finish_text_replaces_the_pending_line_and_nothing_is_written_twice():
    stream = io.StringIO()
    line = ProgressLine(stream, interval=0)
    line.update("a")
    line.finish()  # "a" already written: not again
    line.update("b")
    line.finish("done")
    assert stream.getvalue() == "a\nb\ndone\n"


def test_terminal_line_is_rewritten_in_place_and_padded_over_longer_text():
    stream = Terminal()
    line = ProgressLine(stream)
    line.update("long text")
    line.update("short")
    line.finish("end")
    assert stream.getvalue() == "\rlong text\rshort    \rend      \n"
    assert "\n" not in stream.getvalue()[:-1]


def test_disabled_writes_nothing():
    stream = Terminal()
    line = ProgressLine(stream, enabled=False)
    line.update("x")
    line.finish("y")
    assert stream.getvalue() == ""

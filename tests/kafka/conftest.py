"""Fixtures for the Kafka listener's tests: real `logfs kafka` processes and real mounts
with ``-o kafka=``, always stopped at teardown; a listener or daemon that logged an
ERROR or a Traceback fails the test. Every test runs under an alarm (SIGALRM): a hung
client or daemon fails it instead of hanging the run.

tests/fuse (fuse_helpers: Mount, new_mount, tear_down) is put on the import path here,
as tests/cli/conftest.py does.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "fuse"))
sys.path.insert(0, str(HERE))

from fuse_helpers import Mount, mounted, new_mount, require_fuse, tear_down  # noqa: E402

import kafka_kit  # noqa: E402

LIMIT_S = {"setup": 40, "call": 40, "teardown": 60}
SLOW_CALL_S = 100


def pytest_configure(config):
    # kafka-python 3.0 loads its schemas with importlib.resources' legacy calls
    config.addinivalue_line("filterwarnings",
                            "ignore:.*is deprecated. Use files:DeprecationWarning")


class TestTimedOut(Exception):
    __test__ = False


def _arm(item, phase: str) -> None:
    limit = LIMIT_S[phase]
    if phase == "call" and item.get_closest_marker("slow"):
        limit = SLOW_CALL_S

    def fire(signum, frame):
        raise TestTimedOut(f"{item.nodeid}: {phase} ran over {limit} s")

    signal.signal(signal.SIGALRM, fire)
    signal.alarm(limit)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    _arm(item, "setup")
    try:
        yield
    finally:
        signal.alarm(0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _arm(item, "call")
    try:
        yield
    finally:
        signal.alarm(0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    _arm(item, "teardown")
    try:
        yield
    finally:
        signal.alarm(0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.kafka_xfailed = hasattr(rep, "wasxfail") and rep.skipped


def _expected_failure(request) -> bool:
    """The test failed as its xfail mark said: the errors its daemon logged are that
    known bug's, reported by the mark, not a teardown failure on top."""
    return getattr(request.node, "kafka_xfailed", False)


@pytest.fixture(scope="session", autouse=True)
def _clients_present():
    if not shutil.which(kafka_kit.KCAT):
        pytest.fail(f"kcat is missing ({kafka_kit.KCAT}): apt-get install kcat")
    import confluent_kafka  # noqa: F401 - pip install -e '.[test]'
    import kafka  # noqa: F401


@pytest.fixture
def listener_factory(tmp_path, request):
    """``start(*args, name="k")`` -> a running :class:`kafka_kit.Listener` on its own
    DATA (tmp_path/NAME/data); all are stopped at teardown (SIGTERM, then SIGKILL),
    and one whose log has an ERROR or a Traceback fails the test."""
    made: list[kafka_kit.Listener] = []

    def start(*args: str, name: str = "k", data: Path | None = None) -> kafka_kit.Listener:
        lst = kafka_kit.Listener(data or tmp_path / name / "data", *args,
                                 log=tmp_path / f"{name}-kafka-{len(made)}.log")
        made.append(lst)
        return lst.start()

    yield start
    errors = []
    for lst in made:
        lst.stop()
        bad = lst.problems()
        if bad:
            errors.append(f"{lst.data}: logfs kafka logged errors:\n" + "\n".join(bad[:20]))
    if errors and not _expected_failure(request):
        pytest.fail("\n".join(errors))


@pytest.fixture
def listener(listener_factory) -> kafka_kit.Listener:
    return listener_factory()


@pytest.fixture
def kmount_factory(tmp_path, request):
    """``make(*options, name="m")`` -> a mounted fuse_helpers.Mount serving Kafka
    (``m.bootstrap``); all unmounted at teardown, a daemon that logged an ERROR or a
    Traceback fails the test (fuse_helpers.tear_down)."""
    require_fuse()
    made: list[Mount] = []

    def make(*options: str, name: str = "m") -> Mount:
        m = new_mount(made, tmp_path / name / "data", tmp_path / name / "mnt", options, False)
        kafka_kit.mount_kafka(m)
        return m

    yield make
    if _expected_failure(request):
        for m in made:
            m.cleanup()
        assert not [m for m in made if mounted(str(m.mnt))], "a mount is left"
    else:
        tear_down(made)


@pytest.fixture
def kmount(kmount_factory) -> Mount:
    return kmount_factory()


@pytest.fixture(scope="module")
def module_kmount(tmp_path_factory):
    """One mount serving Kafka shared by a module's tests (each uses its own topics)."""
    require_fuse()
    base = tmp_path_factory.mktemp("shared")
    made: list[Mount] = []
    m = new_mount(made, base / "data", base / "mnt", [], False)
    try:
        kafka_kit.mount_kafka(m)
    except BaseException:
        tear_down(made)
        raise
    yield m
    tear_down(made)


@pytest.fixture(scope="module")
def module_listener(tmp_path_factory):
    """One `logfs kafka` shared by a module's tests."""
    base = tmp_path_factory.mktemp("shared-kafka")
    lst = kafka_kit.Listener(base / "data", log=base / "kafka.log").start()
    yield lst
    lst.stop()
    bad = lst.problems()
    if bad:
        pytest.fail("logfs kafka logged errors:\n" + "\n".join(bad[:20]))

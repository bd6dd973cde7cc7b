"""The Milvus backend against a real Milvus standalone server on loopback (the PyPI ``milvus`` package), started
and stopped by the tests: the backend contract, a server killed and restarted in place (its data kept), and a
server that lost the gallery's data (refilled from the gallery files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from milvus_server import MilvusServer, available
from test_backends import D, run_contract, unit

from arcface.gallery import Gallery
from arcface.gallery.backends import make_index

pytestmark = pytest.mark.skipif(not available(), reason="the milvus server package or pymilvus is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = MilvusServer(tmp_path_factory.mktemp("milvus"))
    try:
        srv.start()
    except Exception as exc:  # noqa: BLE001 - the embedded binary may not run on every machine
        pytest.skip(f"a Milvus server cannot start here: {exc}")
    yield srv
    srv.stop(kill=True)  # its data is the test's; a clean shutdown takes a minute


def test_backend_contract_on_a_real_server(server: MilvusServer) -> None:
    run_contract("milvus-server", make_index("milvus", D, uri=server.uri, collection="contract"))


def test_gallery_on_a_server_that_lost_its_data_is_refilled_from_its_files(
    server: MilvusServer, tmp_path: Path
) -> None:
    """The gallery files are the source of truth: a server whose collection is gone (dropped, or a server
    replaced by an empty one) is refilled from the files when the gallery opens, and answers as before."""
    from pymilvus import MilvusClient

    rng = np.random.default_rng(1)
    centres = unit(rng.standard_normal((40, D)))
    db = tmp_path / "g"
    options = {"uri": server.uri, "collection": "refill"}
    g = Gallery(db, backend="milvus", backend_options=options, threshold=0.5)
    g.enroll_many({f"p{i}": unit(c + 0.05 * rng.standard_normal((2, D))) for i, c in enumerate(centres)})
    g.remove("p3")
    before = [r.identity for r in g.search_batch(centres)]
    g.close()
    assert before == [f"p{i}" if i != 3 else "unknown" for i in range(40)]

    client = MilvusClient(uri=server.uri)
    client.drop_collection("refill")  # the server lost the gallery's copy
    assert not client.has_collection("refill")
    h = Gallery(db, backend="milvus", backend_options=options, threshold=0.5)
    assert [r.identity for r in h.search_batch(centres)] == before and len(h.index) == 39
    h.close()
    assert client.has_collection("refill")


def test_server_killed_and_restarted_keeps_the_gallery(server: MilvusServer, tmp_path: Path) -> None:
    """A crash (SIGKILL) of the server and a restart on the same data folder: the collection comes back with every
    vector the gallery wrote (counted on the server before the gallery reopens, so nothing is refilled), and the
    gallery answers as before. (Last in this module: it restarts the shared server; one embedded server runs at
    a time, they share a pid lock.)"""
    from pymilvus import MilvusClient

    rng = np.random.default_rng(2)
    centres = unit(rng.standard_normal((30, D)))
    db = tmp_path / "g"
    g = Gallery(db, backend="milvus", backend_options={"uri": server.uri, "collection": "crash"}, threshold=0.5)
    g.enroll_many({f"p{i}": unit(c + 0.05 * rng.standard_normal((2, D))) for i, c in enumerate(centres)})
    g.remove("p7")
    before = [r.identity for r in g.search_batch(centres)]
    g.close()
    server.stop(kill=True)  # a crash: no clean shutdown
    server.start()  # same data folder; the proxy port may differ (the old one can still be held)
    client = MilvusClient(uri=server.uri)
    assert client.has_collection("crash")
    client.load_collection("crash")
    rows = client.query("crash", filter="id >= 0", output_fields=["id"], consistency_level="Strong")
    assert len(rows) == 29  # every live identity's vector survived the crash on the server itself
    h = Gallery(db, backend="milvus", backend_options={"uri": server.uri, "collection": "crash"}, threshold=0.5)
    assert [r.identity for r in h.search_batch(centres)] == before and before[7] == "unknown"
    h.close()
    client.close()

"""Every Rust error reaches Python as a class under shmchan.Error, with the Rust message."""

from __future__ import annotations

import pytest

import shmchan
from conftest import new_name


def test_hierarchy():
    assert issubclass(shmchan.Disconnected, shmchan.Error)
    assert issubclass(shmchan.Disconnected, EOFError)
    assert issubclass(shmchan.Timeout, TimeoutError)
    assert issubclass(shmchan.AlreadyExists, FileExistsError)
    assert issubclass(shmchan.NotFound, FileNotFoundError)
    assert issubclass(shmchan.EndpointTaken, shmchan.InUse)
    assert issubclass(shmchan.Io, OSError)
    for cls in (shmchan.Full, shmchan.Empty, shmchan.Incompatible, shmchan.TooLarge,
                shmchan.Closed, shmchan.ForkedHandle, shmchan.Lagged, shmchan.Evicted,
                shmchan.NotReady, shmchan.InvalidName, shmchan.InvalidOptions):
        assert issubclass(cls, shmchan.Error)
        assert cls.__module__ == "shmchan"


def test_open_and_create_errors(name):
    with pytest.raises(shmchan.NotFound) as e:
        shmchan.FrameReceiver.open(name)
    assert name in str(e.value) and e.value.errno == 2
    tx = shmchan.FrameSender.create(name)
    with tx:
        with pytest.raises(shmchan.AlreadyExists):
            shmchan.FrameReceiver.create(name)
        with pytest.raises(shmchan.EndpointTaken):
            shmchan.FrameSender.open(name)
        with pytest.raises(shmchan.Incompatible):
            shmchan.PipeReader.open(name)
        with pytest.raises(shmchan.InUse):
            shmchan.remove(name)
    with pytest.raises(shmchan.InvalidName):
        shmchan.FrameSender.create("a/b")
    with pytest.raises(shmchan.InvalidOptions):
        shmchan.FrameSender.create(new_name(), capacity=0)
    with pytest.raises(TypeError):
        shmchan.FrameSender.create(new_name(), capcity=10)
    with pytest.raises(ValueError):
        shmchan.FrameSender.create(new_name(), backend="file")
    with pytest.raises(ValueError):
        shmchan.FrameSender.create(new_name(), backend="nfs")


def test_data_path_errors(name):
    tx = shmchan.FrameSender.create(name, capacity=64)
    rx = shmchan.FrameReceiver.open(name)
    with pytest.raises(shmchan.TooLarge) as e:
        tx.send(b"x" * 49)
    assert "larger than the channel's maximum of 48" in str(e.value)
    with pytest.raises(ValueError):
        rx.recv(timeout=-1)
    rx.close()
    with pytest.raises(shmchan.Disconnected) as e:
        tx.send(b"x")
    assert str(e.value) == "sending on a disconnected channel"
    tx.close()

"""An upload, from the request's stream to a checked zip on disk: :func:`receive_upload`.

The multipart body is parsed as it arrives (python-multipart's streaming parser): the ``file``
part goes straight into a new file of the service's ``incoming/`` folder and is hashed on the
way; once it passes the size limit the upload stops with :class:`TooLarge` and the partial file
is deleted, so a large upload is never stored whole (a declared ``Content-Length`` over the
limit is refused before anything is read). The zip is then checked and unpacked with
``collect``'s own checks and sentences (:func:`autograder.collect.unpack_zip`): no absolute
paths or ``..``, no links, the entry, size and compression-ratio limits against zip bombs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ..core.text import clean_text

FIELD_BYTES = 1024
"""Form fields other than the file: at most this many bytes each."""
FIELDS = 16


class Refused(Exception):
    """An upload that cannot be accepted; ``status`` and one sentence for the student."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TooLarge(Refused):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"The upload is larger than the limit of {limit / 2**20:g} MB; hand in the zip that "
            "create_submission() writes (notebook, exercise_code/ and models/ only).",
        )


@dataclass(frozen=True)
class Received:
    """A streamed upload: its form fields, the file's name, where its bytes are, their hash."""

    fields: dict[str, str]
    file_name: str
    path: Path
    size: int
    sha256: str


class _Form:
    """The callbacks of python-multipart's parser: fields kept, the file written to disk."""

    def __init__(self, incoming: Path, limit: int) -> None:
        self.incoming, self.limit = incoming, limit
        self.fields: dict[str, str] = {}
        self.file: tuple[str, Path, int, str] | None = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._stream = None
        self._path: Path | None = None
        self._size = 0
        self._hash = hashlib.sha256()
        self._file_name = ""

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._name, self._value = {}, None, bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == "file":
            if self._stream is not None:
                raise Refused(400, "Send one file per upload.")
            self._file_name = clean_text(
                options.get(b"filename", b"upload.zip").decode("utf-8", "replace"), 200
            )
            handle, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=self.incoming)
            self._path = Path(name)
            self._stream = os.fdopen(handle, "wb")
        elif len(self.fields) >= FIELDS:
            raise Refused(400, "The upload has too many form fields; send assignment and file.")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._name == "file":
            self._size += len(chunk)
            if self._size > self.limit:
                raise TooLarge(self.limit)
            self._hash.update(chunk)
            self._stream.write(chunk)
        else:
            self._value += chunk
            if len(self._value) > FIELD_BYTES:
                raise Refused(400, f"The form field {clean_text(self._name, 40)!r} is too long.")

    def _part_end(self) -> None:
        if self._name == "file" and self._stream is not None and self.file is None:
            self._stream.close()  # synced to disk where it is stored (off the event loop)
            self.file = (self._file_name, self._path, self._size, self._hash.hexdigest())
        elif self._name and self._name != "file":
            self.fields[self._name] = self._value.decode("utf-8", "replace")

    def discard(self) -> None:
        if self._stream is not None and not self._stream.closed:
            self._stream.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)


async def receive_upload(request: Request, incoming: Path, limit: int) -> Received:
    """Stream the multipart body of ``request`` (fields ``assignment`` and ``file``); the file
    lands in ``incoming`` (the caller moves or deletes it). Raises :class:`Refused` (400),
    :class:`TooLarge` (413) while the body streams."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Refused(
            400, "Send the upload as multipart/form-data with the fields assignment and file."
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise TooLarge(limit)
    incoming.mkdir(parents=True, exist_ok=True)
    form = _Form(incoming, limit)
    parser = MultipartParser(boundary, form.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except Refused:
        form.discard()
        raise
    except Exception as error:  # a malformed body
        form.discard()
        raise Refused(
            400, f"The upload could not be read ({clean_text(error, 120)}); send it again."
        ) from None
    if form.file is None:
        form.discard()
        raise Refused(400, "The upload has no file; choose the zip that create_submission() wrote.")
    name, path, size, digest = form.file
    return Received(form.fields, name, path, size, digest)

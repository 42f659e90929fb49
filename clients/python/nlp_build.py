"""A PEP 517 build backend for the nlpclient package, in the tree so that pip builds it
offline: it needs no setuptools or wheel from an index. It lays nlpclient.py out as the
package nlpclient (__init__.py, __main__.py) with nlp_pb2.py, made by protoc from
../../proto/nlp.proto (or taken from $NLP_PB2_DIR, $NLP_BUILD/gen/python or
../../build/gen/python when protoc is missing), and writes the wheel by hand (PEP 427).
Name and version come from pyproject.toml. No sdist: the package needs the repository's
proto/ directory."""
import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def _project():
    """name, version, description, requires-python and dependencies of pyproject.toml
    (the few keys it has; tomllib is not in Python 3.9/3.10)."""
    text = open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8").read()
    proj = text.split("[project]", 1)[1]
    out = {}
    for key in ("name", "version", "description", "requires-python"):
        m = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(key), proj, re.M)
        out[key] = m.group(1) if m else None
    m = re.search(r"^dependencies\s*=\s*\[([^\]]*)\]", proj, re.M)
    out["dependencies"] = re.findall(r'"([^"]+)"', m.group(1)) if m else []
    return out


def _nlp_pb2(tmp):
    """The path of a generated nlp_pb2.py."""
    proto = os.path.join(ROOT, "proto", "nlp.proto")
    if shutil.which("protoc") and os.path.exists(proto):
        subprocess.run(["protoc", "--proto_path=" + os.path.dirname(proto),
                        "--python_out=" + tmp, proto], check=True)
        return os.path.join(tmp, "nlp_pb2.py")
    for d in (os.environ.get("NLP_PB2_DIR"),
              os.path.join(os.environ["NLP_BUILD"], "gen", "python")
              if os.environ.get("NLP_BUILD") else None,
              os.path.join(ROOT, "build", "gen", "python")):
        if d and os.path.exists(os.path.join(d, "nlp_pb2.py")):
            return os.path.join(d, "nlp_pb2.py")
    raise RuntimeError("nlpclient: no protoc (Debian: protobuf-compiler) and no "
                       "generated nlp_pb2.py (run make)")


def _metadata(p):
    lines = ["Metadata-Version: 2.1", "Name: " + p["name"], "Version: " + p["version"]]
    if p["description"]:
        lines.append("Summary: " + p["description"])
    if p["requires-python"]:
        lines.append("Requires-Python: " + p["requires-python"])
    lines += ["Requires-Dist: " + d for d in p["dependencies"]]
    return "\n".join(lines) + "\n"


def _dist_info(p):
    return "%s-%s.dist-info" % (p["name"], p["version"])


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    p = _project()
    d = os.path.join(metadata_directory, _dist_info(p))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata(p))
    return _dist_info(p)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    p = _project()
    name = "%s-%s-py3-none-any.whl" % (p["name"], p["version"])
    info = _dist_info(p)
    with tempfile.TemporaryDirectory() as tmp:
        files = [("nlpclient/__init__.py", os.path.join(HERE, "nlpclient.py")),
                 ("nlpclient/__main__.py", os.path.join(HERE, "__main__.py")),
                 ("nlpclient/nlp_pb2.py", _nlp_pb2(tmp))]
        entries = [(arc, open(src, "rb").read()) for arc, src in files]
        entries.append((info + "/METADATA", _metadata(p).encode()))
        entries.append((info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: nlp_build\n"
                        b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
        entries.append((info + "/top_level.txt", b"nlpclient\n"))
        record = []
        for arc, data in entries:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append("%s,sha256=%s,%d" % (arc, digest.decode(), len(data)))
        record.append(info + "/RECORD,,")
        entries.append((info + "/RECORD", ("\n".join(record) + "\n").encode()))
        with zipfile.ZipFile(os.path.join(wheel_directory, name), "w",
                             zipfile.ZIP_DEFLATED) as z:
            for arc, data in entries:
                z.writestr(zipfile.ZipInfo(arc, (2020, 1, 1, 0, 0, 0)), data,
                           zipfile.ZIP_DEFLATED)
    return name

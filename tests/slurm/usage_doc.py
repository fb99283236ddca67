"""The usage blocks of docs/operations.md are the --help output of the cluster/slurm scripts.
    python usage_doc.py SRC --check    exit 1 (naming the script) when a block differs
    python usage_doc.py SRC --write    rewrites the blocks from the scripts
"""
import re
import subprocess
import sys


def usage(src, script):
    return subprocess.run(["bash", f"{src}/cluster/slurm/{script}", "--help"], check=True,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout


def main(src, mode):
    doc_path = f"{src}/docs/operations.md"
    doc = open(doc_path).read()
    pattern = re.compile(r"(<!-- usage: (\S+) -->\n)(.*?)(<!-- end usage -->)", re.S)
    bad = []

    def fill(m):
        block = "```text\n" + usage(src, m.group(2)) + "```\n"
        if m.group(3) != block:
            bad.append(m.group(2))
        return m.group(1) + block + m.group(4)

    new = pattern.sub(fill, doc)
    scripts = pattern.findall(doc)
    assert len(scripts) == 4, f"{doc_path}: expected 4 usage blocks, found {len(scripts)}"
    if mode == "--write":
        open(doc_path, "w").write(new)
    elif bad:
        sys.exit(f"{doc_path}: usage of {', '.join(bad)} differs from the script's --help "
                 f"(python tests/slurm/usage_doc.py . --write)")
    print(f"{doc_path}: usage of {len(scripts)} scripts matches their --help")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

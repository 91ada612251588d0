"""Write 18 more kinds of held-back text (300 each) to look for a kind the fidelity suite
misses (docs/research-record-2026.md, "words the model spells out"): corpus lines from
1,880,000 on by topic (medical, stocks, games, finance, cars) and by form (Latin letters
≥ 30 % of the characters, digits ≥ 15 %, Weibo marks), each line to the first kind it fits,
and THUCNews test titles by class (not the suite's every 16th). Then:
`ltd eval suite -m MODEL --suite OUT_DIR`.

Usage: python experiments/probe_kinds.py OUT_DIR [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

FROM = 1_880_000  # zh_big.txt lines (0-based) no shipped model trains on
PER_KIND = 300
TOPICS = {
    "medical": r"医生|症状|怀孕|宝宝|医院|吃药|治疗|发烧|咳嗽",
    "stocks": r"涨停|板块|A股|股价|基金|大盘|个股|券商",
    "games": r"游戏|玩家|英雄联盟|王者荣耀|装备|副本",
    "finance": r"贷款|信用卡|还款|银行卡|额度|支付宝|利息|转账",
    "ascii": None,
    "digits": None,
    "weibo": r"[#@]|\[[^\]]{1,4}\]|哈哈",
    "cars": r"发动机|油耗|变速箱|轴距|车型|SUV",
}


def fits(kind: str, pattern: re.Pattern | None, t: str) -> bool:
    if kind == "ascii":
        return sum(c.isascii() and c.isalpha() for c in t) >= 0.3 * len(t)
    if kind == "digits":
        return sum(c.isdigit() for c in t) >= 0.15 * len(t)
    return bool(pattern.search(t))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    args = ap.parse_args()
    patterns = {k: re.compile(p) if p else None for k, p in TOPICS.items()}
    out: dict[str, list[str]] = {k: [] for k in TOPICS}
    with open(args.shared / "corpus" / "zh_big.txt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            t = line.strip()
            if i < FROM or not t:
                continue
            for kind, pattern in patterns.items():
                if len(out[kind]) < PER_KIND and fits(kind, pattern, t):
                    out[kind].append(t)
                    break
    thuc = args.shared / "eval" / "THUCNews"
    names = (thuc / "class.txt").read_text(encoding="utf-8").split()
    by_class: dict[int, list[str]] = {i: [] for i in range(len(names))}
    with open(thuc / "test.txt", encoding="utf-8") as fh:
        for j, line in enumerate(fh):
            title, cls = line.rstrip("\n").split("\t")
            if j % 16 and len(by_class[int(cls)]) < PER_KIND:  # the suite has every 16th
                by_class[int(cls)].append(title)
    for i, rows in by_class.items():
        out[f"thuc_{names[i]}"] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    for kind, rows in out.items():
        (args.out / f"{kind}.txt").write_text("".join(t + "\n" for t in rows), encoding="utf-8")
        print(f"{kind}: {len(rows)}")


if __name__ == "__main__":
    main()

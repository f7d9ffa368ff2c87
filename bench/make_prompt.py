#!/usr/bin/env python3
"""Writes bench/prompt-ja.json (and its streaming twins prompt-ja-stream.json and
prompt-ja-anthropic-stream.json): a chat.completions body for model
mock-gpt carrying about 2.4 KB (UTF-8) of ordinary business Japanese. Deterministic."""
import json, os, sys

SYSTEM = "あなたは社内の業務文書作成を支援するアシスタントです。丁寧で簡潔な日本語で回答してください。"
USER = (
    "以下の議事録の要点を整理し、取引先へ送付する報告メールの下書きを作成してください。\n\n"
    "【会議名】第三四半期 物流システム刷新プロジェクト定例会議\n"
    "【日時】十月十五日（水）十四時から十五時三十分\n"
    "【出席者】営業部 課長、情報システム部 主任、物流管理部 担当者二名、外部委託先 担当者一名\n\n"
    "一、進捗状況について\n"
    "倉庫管理システムの移行作業は計画どおり進んでおり、在庫データの移行検証は九割が完了した。"
    "残りの一割は返品処理に関するデータで、旧システムとの項目定義の差異により変換規則の見直しが必要である。"
    "情報システム部より、今月末までに変換規則を確定し、来月第一週に再検証を行う方針が示された。\n\n"
    "二、課題と対応方針\n"
    "出荷指示の連携において、夜間バッチの処理時間が想定より長く、翌朝の出荷作業に影響する恐れがある。"
    "外部委託先から、処理の並列化と不要な中間ファイルの削減により、処理時間を約四割短縮できる見込みとの説明があった。"
    "物流管理部からは、繁忙期である十二月に入る前に本番環境での性能試験を実施したいとの要望があり、"
    "十一月中旬に試験日程を調整することで合意した。\n\n"
    "三、今後の予定\n"
    "十一月上旬に利用部門向けの操作説明会を開催し、操作手順書の初版を配布する。"
    "本番切り替えは一月中旬を予定しているが、性能試験の結果次第で日程を再検討する。"
    "次回の定例会議は十一月五日（水）十四時からとし、資料は前日までに共有する。\n\n"
    "メールは取引先のご担当者様宛てとし、冒頭に日頃の感謝を述べたうえで、"
    "進捗、課題、今後の予定の三点を箇条書きで簡潔にまとめてください。"
    "社外秘の情報や個人名は含めず、結びには引き続きのご協力をお願いする一文を入れてください。"
)

def body(stream):
    b = {"model": "mock-gpt",
         "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
         "temperature": 0.2}
    if stream:
        b["stream"] = True
    return json.dumps(b, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
def anthropic_body():
    b = {"model": "mock-claude", "max_tokens": 1024, "system": SYSTEM,
         "messages": [{"role": "user", "content": USER}], "stream": True}
    return json.dumps(b, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

files = (("prompt-ja.json", lambda: body(False)), ("prompt-ja-stream.json", lambda: body(True)),
         ("prompt-ja-anthropic-stream.json", anthropic_body))
for name, make in files:
    data = make()
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes", file=sys.stderr)

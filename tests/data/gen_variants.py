"""Writes redaction-variants.jsonl: the public corpus's kinds with random, checksum-valid values in
the formats people write them (full-width digits, other separators, every card brand, landlines,
toll-free and +81 numbers, other token issuers, other field labels and tag spellings). Fixed seed,
so the file is reproducible: python3 tests/data/gen_variants.py"""
import json, os, random, re, string
R = random.Random(20261206)
FW = str.maketrans('0123456789-', '０１２３４５６７８９－')
def fw(s): return s.translate(FW)
def mynum():
    base = [R.randint(0,9) for _ in range(11)]
    s = 0
    for n in range(1,12):
        p = base[11-n]; q = n+1 if n <= 6 else n-5; s += p*q
    r = s % 11; c = 0 if r <= 1 else 11-r
    return ''.join(map(str,base)) + str(c)
def corp():
    base = [R.randint(0,9) for _ in range(12)]
    s = sum(base[12-n]*(1 if n%2 else 2) for n in range(1,13))
    return str(9 - s % 9) + ''.join(map(str,base))
def luhn_complete(prefix, length):
    d = [int(x) for x in prefix] + [R.randint(0,9) for _ in range(length-len(prefix)-1)]
    for c in range(10):
        t = d + [c]; s = 0
        for i, x in enumerate(reversed(t)):
            if i % 2: x *= 2; x -= 9 if x > 9 else 0
            s += x
        if s % 10 == 0: return ''.join(map(str,t))
NAMES = ['山田由美','佐藤健一','鈴木花子','高橋誠','田中美咲','伊藤翔太','渡辺直子','中村大輔']
COS = ['青葉ロジスティクス','東雲物産','北斗システムズ株式会社','桜川製薬']
cases = []
def add(kind, text, secrets, keep=()):
    cases.append({"id": f"gen_{kind}_{len(cases)}", "kind": kind, "text": text, "secrets": secrets, "must_keep": list(keep)})
for i in range(12):
    n = mynum(); nm = R.choice(NAMES)
    g = [n[:4], n[4:8], n[8:]]
    fmts = [n, fw(n), '-'.join(g), fw('-'.join(g)), ' '.join(g), 'ー'.join(g), '　'.join(g), '－'.join(g)]
    f = fmts[i % len(fmts)]
    tmpl = R.choice(['{nm}さんの個人番号は{f}です。住民票の写しと照合してください。', 'マイナンバー：{f}（{nm}）', '個人番号 {f} を控えておいてください。', '{nm}のマイナンバーは{f}。'])
    add('my_number', tmpl.format(nm=nm, f=f), [n] if f == n else [x for x in g])
for i in range(8):
    c = corp(); co = R.choice(COS)
    f = [c, fw(c)][i % 2]
    tmpl = R.choice(['取引先の法人番号：{f}（{co}）を確認済み。', '法人番号 {f} の登記を確認', '{co}（法人番号{f}）との契約'])
    add('corporate_number', tmpl.format(f=f, co=co), [c if f == c else f])
brands = [('4',16),('51',16),('55',16),('2221',16),('34',15),('37',15),('3528',16),('36',14),('6011',16)]
for i in range(18):
    pre, ln = brands[i % len(brands)]
    c = luhn_complete(pre, ln)
    if ln == 15: g = [c[:4], c[4:10], c[10:]]
    elif ln == 14: g = [c[:4], c[4:10], c[10:]]
    else: g = [c[i:i+4] for i in range(0,16,4)]
    fmts = [' '.join(g), '-'.join(g), c, fw('-'.join(g)), fw(c)]
    f = fmts[i % len(fmts)]
    tmpl = R.choice(['カード番号 {f} 有効期限 12/29 で決済してください。', 'クレジットカード：{f}', '決済に使うカードは{f}です。'])
    secret = [x for x in g] if f not in (c,) else [c]
    if f == fw(c): secret = [fw(c)]
    if f == fw('-'.join(g)): secret = [fw(x) for x in g]
    add('credit_card', tmpl.format(f=f), secret)
def digits(k): return ''.join(R.choice(string.digits) for _ in range(k))
for i in range(24):
    kind = i % 8
    if kind == 0: a, b = digits(4), digits(4); p = f"0{R.choice('789')}0-{a}-{b}"; sec=[a,b]
    elif kind == 1: a, b = digits(4), digits(4); p = f"03-{a}-{b}"; sec=[a,b]
    elif kind == 2: a, b = digits(3), digits(4); p = f"045-{a}-{b}"; sec=[a,b]
    elif kind == 3: a, b = digits(3), digits(3); p = f"0120-{a}-{b}"; sec=[a,b]
    elif kind == 4: a, b = digits(4), digits(4); p = f"+81-90-{a}-{b}"; sec=[a,b]
    elif kind == 5: a, b = digits(4), digits(4); p = f"(03){a}-{b}"; sec=[a,b]
    elif kind == 6: a, b = digits(4), digits(4); p = fw(f"080-{a}-{b}"); sec=[fw(a),fw(b)]
    else: a, b = digits(4), digits(4); p = f"090{a}{b}"; sec=[p]
    if i >= 16 and kind not in (6,7): p = p.replace('-', R.choice(['ー','－',' ']))
    tmpl = R.choice(['担当の{nm}（携帯 {p}）まで折り返し連絡をお願いします。', '電話番号：{p}', '{nm}さんの連絡先は{p}です。', 'TEL {p}（平日9時〜17時）'])
    add('jp_phone', tmpl.format(nm=R.choice(NAMES), p=p), sec)
for i in range(10):
    local = R.choice(['h-sato75','taro.yamada','y_suzuki+ai','Info','k.tanaka2024'])
    dom = R.choice(['mail.example.jp','corp.example.com','example.co.jp','dept.univ.example.ac.jp','sub-domain.example.org'])
    e = f"{local}@{dom}"
    tmpl = R.choice(['資料は {e} 宛に送付済みです。', 'メール：{e}', '連絡先（{e}）までご返信ください。', '宛先: <{e}>'])
    add('email', tmpl.format(e=e), [e])
for i in range(10):
    a, b = digits(3), digits(4)
    f = [f"〒{a}-{b}", f"〒{fw(a+'-'+b)}", f"〒 {a}-{b}", f"郵便番号 {a}-{b}", f"〒{a}{b}"][i % 5]
    sec = [f"{a}-{b}"] if '-' in f and '－' not in f else ([fw(a+'-'+b)] if '－' in f else [a+b])
    add('postal_code', f"送付先：{f} 東京都千代田区霞が関1-2-3", sec)
SECRETS = [
 ('sk-proj-' + ''.join(R.choice(string.ascii_letters+string.digits) for _ in range(48))),
 ('sk-ant-api03-' + ''.join(R.choice(string.ascii_letters+string.digits+'-_') for _ in range(80)) + 'AA'),
 ('AKIA' + ''.join(R.choice(string.ascii_uppercase+string.digits) for _ in range(16))),
 ('ghp_' + ''.join(R.choice(string.ascii_letters+string.digits) for _ in range(36))),
 ('github_pat_' + ''.join(R.choice(string.ascii_letters+string.digits) for _ in range(22)) + '_' + ''.join(R.choice(string.ascii_letters+string.digits) for _ in range(59))),
 ('xoxb-' + digits(12) + '-' + digits(13) + '-' + ''.join(R.choice(string.ascii_letters+string.digits) for _ in range(24))),
 ('AIza' + ''.join(R.choice(string.ascii_letters+string.digits+'-_') for _ in range(35))),
 ('glpat-' + ''.join(R.choice(string.ascii_letters+string.digits+'-_') for _ in range(20))),
 ('sk_live_' + ''.join(R.choice(string.ascii_letters+string.digits) for _ in range(24))),
 ('SG.' + ''.join(R.choice(string.ascii_letters+string.digits) for _ in range(22)) + '.' + ''.join(R.choice(string.ascii_letters+string.digits) for _ in range(43))),
 ('sk-' + ''.join(R.choice(string.ascii_letters+string.digits) for _ in range(48))),
 ('hf_' + ''.join(R.choice(string.ascii_letters) for _ in range(34))),
]
for s in SECRETS:
    var = R.choice(['TOKEN','API_KEY','OPENAI_API_KEY','SECRET','KEY'])
    add('secret', f"このスクリプトが動きません。\nexport {var}={s}\ncurl -H \"Authorization: Bearer ${var}\" ...", [s], ['このスクリプトが動きません。'])
    add('secret', f"設定ファイルに {s} と書いたのですが認証エラーになります。", [s], ['設定ファイルに'])
for i in range(8):
    nm = R.choice(NAMES); addr = f"東京都品川区西新宿{R.randint(1,9)}-{R.randint(1,20)}-{R.randint(1,30)}"
    lab = R.choice([('氏名','住所'),('名前','住所'),('お名前','ご住所'),('氏名','現住所')])
    if i % 2:
        add('field_json', json.dumps({lab[0]: nm, lab[1]: addr, "部署": "総務課"}, ensure_ascii=False) + " をもとに案内文を作成して", [nm, addr], ['総務課'])
    else:
        sep = R.choice(['：', ': ', ':', '　：', ' : '])
        add('field_line', f"{lab[0]}{sep}{nm}\n{lab[1]}{sep}{addr}\n用件：窓口の案内", [nm, addr], ['窓口の案内'])
LABELS = [('氏名', lambda: R.choice(NAMES)), ('お名前', lambda: R.choice(NAMES)), ('フリガナ', lambda: 'ヤマダ ユミ'),
          ('住所', lambda: f"大阪府大阪市北区梅田{R.randint(1,3)}-{R.randint(1,9)}-{R.randint(1,20)}"),
          ('生年月日', lambda: f"19{R.randint(50,99)}年{R.randint(1,12)}月{R.randint(1,28)}日"),
          ('電話番号', lambda: f"03-{digits(4)}-{digits(4)}"), ('携帯電話', lambda: f"090-{digits(4)}-{digits(4)}"),
          ('メールアドレス', lambda: f"user{digits(3)}@example.co.jp"),
          ('customer_name', lambda: 'Taro Yamada'), ('email', lambda: f"taro{digits(2)}@example.com"),
          ('phone', lambda: f"+81-3-{digits(4)}-{digits(4)}"), ('address', lambda: '1-2-3 Kasumigaseki, Chiyoda-ku, Tokyo')]
for lab, val in LABELS:
    v = val()
    add('field_line', f"{lab}：{v}\n用件：窓口の案内", [v], ['窓口の案内'])
    v = val()
    add('field_json', json.dumps({lab: v, "部署": "総務課"}, ensure_ascii=False) + " をもとに案内文を作成して", [v], ['総務課'])
for i in range(9):
    open_, close = [('<機密>','</機密>'),('<confidential>','</confidential>'),('【機密】','【/機密】'),('<CONFIDENTIAL>','</CONFIDENTIAL>'),('＜機密＞','＜／機密＞')][i % 5]
    body = R.choice(['次期システムの予定価格は4億2千万円','移行日は2027年3月14日深夜','売上目標は前年比120%'])
    if i >= 5:
        add('tag_multiline', f"会議メモ\n{open_}\n参加者：山田由美\n{body}\n{close}\n以上。", [body, '山田由美'], ['会議メモ', '以上。'])
    else:
        add('tag', f"以下を要約してください。{open_}{body}{close}また、全体の構成を整えてください。", [body], ['以下を要約してください。'])
for t in ['株式会社みなと商事','北斗システムズ株式会社','東雲物産','青葉ロジスティクス','桜川製薬','プロジェクト・カワセミ','Project BLUEJAY','案件コードKAGURA','ORCA-7','ひばり計画']:
    add('term', f"{t}向けの提案について、骨子を作成して。", [t], ['骨子を作成して。'])
for i in range(6):
    d = f"20{R.randint(20,29)}-{R.randint(1,12):02d}-{R.randint(1,28):02d}"; amt = f"{R.randint(1,999)},{R.randint(100,999)},{R.randint(100,999)}"; v = f"{R.randint(1,9)}.{R.randint(0,20)}.{R.randint(0,9)}"
    add('no_pii', f"{d}時点の見積額は{amt}円、バージョン{v}を前提とする。", [], [d, amt+'円', v])
    n = mynum(); bad = n[:11] + str((int(n[11]) + R.randint(1, 9)) % 10)
    add('my_number_invalid', f"伝票番号{bad}の件で、請求書を再発行しました。", [], [])
# The same kinds written as people also write them: labels and prefixes around phone numbers,
# mailto links and mail headers, ZIP and full-width postal codes, keys in code and config, terms in
# other widths, cases and legal forms, tags with attributes, qualified and compound field labels.
for t in ['TEL:03-{a}-{b}','Tel. 03-{a}-{b}','☎ 090-{a}-{b}','℡03-{a}-{b}','電話 03-{a}-{b}（内線123）','03-{a}-{b}(代表)','FAX 03-{a}-{b}','携帯：090 {a} {b}','連絡先 +81 90-{a}-{b}','０３（{a}）{b}','電話:0312345678'.replace('12345678','{a}{b}'),'phone: (090) {a}-{b}']:
    a,b=digits(4),digits(4); txt=t.format(a=a,b=b)
    sec=[a,b] if '{a}{b}' not in t else [a+b]
    if '０３（' in t: sec=[a,b]
    add('jp_phone', f"担当者への連絡は {txt} までお願いします。", sec)
for i in range(6):
    n=mynum(); g=[n[:4],n[4:8],n[8:]]
    t=['個人番号（マイナンバー）: {d}','マイナンバーカードの番号 {d}','No. {d}（個人番号）','本人確認書類：個人番号カード {d}','個人番号:{d}','マイナンバー={d}'][i]
    d=['-'.join(g),' '.join(g),n,fw(n),fw(' '.join(g)),n][i]
    sec=[n] if d==n else ([fw(n)] if d==fw(n) else [fw(x) for x in g] if d==fw(' '.join(g)) else g)
    add('my_number', t.format(d=d), sec)
for i in range(6):
    e=R.choice(['taro.yamada@example.co.jp','h-sato75@mail.example.jp','support+jp@corp.example.com'])
    t=['<a href="mailto:{e}">問い合わせ</a>','From: 山田 太郎 <{e}>','メール　{e}　まで','E-mail:{e}','（{e}）','mailto:{e}?subject=見積'][i]
    add('email', t.format(e=e), [e])
for i in range(6):
    a,b=digits(3),digits(4)
    t=['〒{fa}{fb}','郵便番号：{a}－{b}','〒{a}ー{b}','ZIP {a}-{b}','〒 {fa}－{fb} 大阪府','郵便番号{a}{b}'][i]
    txt=t.format(a=a,b=b,fa=fw(a),fb=fw(b))
    sec={0:[fw(a)+fw(b)],1:[a,b],2:[a,b],3:[f"{a}-{b}"],4:[fw(a),fw(b)],5:[a+b]}[i]
    add('postal_code', f"送付先 {txt} 東京都港区芝公園", sec)
sk='sk-proj-'+''.join(R.choice(string.ascii_letters+string.digits) for _ in range(48))
for t in ['{{"apiKey": "{s}"}}','api_key: {s}','OPENAI_API_KEY="{s}"','Authorization: Bearer {s}','client = OpenAI(api_key="{s}")','キーは{s}です','const KEY = `{s}`;','--api-key {s}']:
    add('secret', t.format(s=sk), [sk])
for t in ['ＯＲＣＡ－７','orca-7','Orca-7','ＯＲＣＡ-7','ORCA‐7','東雲物産株式会社','株式会社 東雲物産','青葉ロジスティクス株式会社','PROJECT BLUEJAY','project bluejay','プロジェクト カワセミ','ヒバリ計画','桜川製薬（株）','㈱みなと商事']:
    add('term', f"{t}の件で資料を作成してください。", [t], ['資料を作成してください。'])
for o,c in [('<機密 level="high">','</機密>'),('<confidential class="x">','</confidential>'),('【機密】\n','\n【/機密】'),('＜ＣＯＮＦＩＤＥＮＴＩＡＬ＞','＜／ＣＯＮＦＩＤＥＮＴＩＡＬ＞'),('<Confidential>','</Confidential>')]:
    add('tag', f"要約して。{o}買収価格は52億円{c}以上。", ['買収価格は52億円'], ['要約して。'])
for lab in ['氏名（漢字）','氏名(カナ)','名前','担当者名','申込者氏名','契約者住所','ご住所','現住所','自宅住所','本籍','生年月日','電話','携帯番号','E-mail','メール','連絡先']:
    v={'氏名（漢字）':'山田太郎','氏名(カナ)':'ヤマダタロウ','名前':'山田太郎','担当者名':'佐藤健一','申込者氏名':'鈴木花子','契約者住所':'港区芝公園4-2-8','ご住所':'港区芝公園4-2-8','現住所':'港区芝公園4-2-8','自宅住所':'港区芝公園4-2-8','本籍':'千代田区千代田1-1','生年月日':'1985年4月12日','電話':'03-5555-1234','携帯番号':'090-5555-1234','E-mail':'a.b@example.jp','メール':'a.b@example.jp','連絡先':'090-5555-1234'}[lab]
    add('field_line', f"{lab}：{v}\n備考：特になし", [v], ['特になし'])
    add('field_json', json.dumps({lab: v, "備考": "特になし"}, ensure_ascii=False), [v], ['特になし'])
# Business prose full of numbers that are none of the above: every number must pass unchanged.
for t in [
 "2026年12月6日時点の見積額は1,234,567円（税込）で、前回比3.5%増です。",
 "令和8年12月6日（日）14:00〜15:30に第2会議室で打合せを行います。",
 "バージョン2.11.1からv3.0.0-rc.1への移行手順をまとめてください。",
 "ISO/IEC 27001:2022とJIS Q 27001の差分を表にしてください。",
 "RFC 9110とRFC 9112を参考にHTTPの説明を書いて。",
 "サーバー 192.168.10.25 のポート 8080 と 443 を開放します。",
 "コミット 3f9a2c1 と 8b7e6d5 の差分をレビューしてください。",
 "在庫は1,250個、受注は3,480件、達成率は112%でした。",
 "型番 ABC-1234-56 と XYZ-9876 の仕様を比較して。",
 "第3四半期の売上は12億3,400万円、営業利益は1億2,000万円でした。",
 "2026/12/06 09:30 にバッチが終了し、処理件数は 45,678 件でした。",
 "請求書番号 INV-2026-00123 の支払期日は2027年1月31日です。",
 "部品番号 1234-5678 は廃番になりました。",
 "エラーコード 0x80070005 が表示されます。",
 "SHA-256 のハッシュ値は e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 です。",
 "会議ID 845 2231 9087 で参加してください。",
 "郵便物の追跡番号は国際郵便の例として EJ123456789JP のような形式です。",
 "温度は23.5℃、湿度は45%、気圧は1013hPaでした。",
 "記事ID 12345678 のPVは 98,765 でした。",
 "北緯35.6812度、東経139.7671度付近です。",
 "電話番号の形式は 03-XXXX-XXXX のように表記してください。",
 "平成31年4月30日と令和元年5月1日の間で元号が変わりました。",
 "1日あたり24時間、1年は365日、うるう年は366日です。",
 "金額欄には ¥980,000 と ￥12,345 を記入。",
 "Python 3.11.7 と Node.js 20.20.2 を使用します。",
 "ページ 12-15 と 203-210 を参照してください。",
 "製造ロット 20261206-01 の検査結果は合格です。",
]:
    add('no_pii', t, [], [w for w in re.findall(r'[0-9A-Za-z¥￥][0-9A-Za-z,.:/_+-]*[0-9A-Za-z]|[0-9]', t) if any(c.isdigit() for c in w)])
for c in cases:
    if c['kind'] == 'my_number_invalid':
        n = c['text'][4:16]
        c['must_keep'] = [n]
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'redaction-variants.jsonl'),'w') as f:
    for c in cases: f.write(json.dumps(c, ensure_ascii=False) + '\n')
print(len(cases))

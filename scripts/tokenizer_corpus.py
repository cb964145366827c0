"""Deterministic corpus of >= 2,000 varied strings for tokenizer golden tests.

Used by make_tokenizer_golden.py; the strings are written to tests/golden/tokenizer_strings.json
so the C++ test reads exactly what the references tokenized.
"""
import random
import unicodedata

SENTENCES = [
    # English and contractions (the GPT-2 regex special-cases 's 't 're 've 'm 'll 'd).
    "The quick brown fox jumps over the lazy dog.",
    "It's what they're saying: we'll see, I'd say, you've been warned, I'm sure.",
    "SHE'S HERE AND THEY'RE GONE, WE'LL SEE, I'D LIKE IT, YOU'VE GOT IT, I'M OK, DON'T.",
    "Don’t confuse the curly apostrophe’s behaviour with the straight one's.",
    "rock 'n' roll, 'tis the season, o'clock, y'all'll've",
    # European scripts.
    "Größenordnung: Straße, Fußgängerübergänge und Äpfel.",
    "Le cœur a ses raisons que la raison ne connaît point — Pascal.",
    "¿Dónde está la biblioteca? ¡Aquí está!",
    "Ελληνικά: Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "Русский: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Українська: Чуєш їх, доцю, га? Кумедна ж ти, прощайся без ґольфів!",
    "Polski: Zażółć gęślą jaźń. Čeština: Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Tiếng Việt: Tôi có thể ăn thủy tinh mà không hại gì.",
    "Türkçe: Pijamalı hasta yağız şoföre çabucak güvendi. İstanbul ıIİi",
    # Right-to-left.
    "العربية: نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر ومغلف بجلد أزرق.",
    "עברית: דג סקרן שט בים מאוכזב ולפתע מצא חברה.",
    "فارسی: به نام خداوند جان و خرد، کزین برتر اندیشه برنگذرد ۱۲۳۴",
    # South and South-East Asian scripts.
    "हिन्दी: ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम।",
    "বাংলা: আমি কাঁচ খেতে পারি, তাতে আমার কোনো ক্ষতি হয় না। ১২৩",
    "தமிழ்: நான் கண்ணாடி சாப்பிடுவேன், அதனால் எனக்கு ஒரு கேடும் வராது.",
    "ภาษาไทย: เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน ๑๒๓",
    "ລາວ: ຂອ້ຍກິນແກ້ວໄດ້ໂດຍທີ່ມັນບໍ່ໄດ້ເຮັດໃຫ້ຂອ້ຍເຈັບ.",
    "မြန်မာ: ကျွန်တော် ကျွန်မ မှန်စားနိုင်တယ်။",
    "ខ្មែរ: ខ្ញុំអាចញុំកញ្ចក់បាន ដោយគ្មានបញ្ហារ",
    # East Asian.
    "中文：我能吞下玻璃而不伤身体。今天天气很好，我们去公园散步吧！",
    "繁體中文：我能吞下玻璃而不傷身體。",
    "日本語：私はガラスを食べられます。それは私を傷つけません。カタカナとひらがな、漢字。",
    "한국어: 나는 유리를 먹을 수 있어요. 그래도 아프지 않아요. ㄱㄴㄷ",
    "Fullwidth: ＡＢＣ１２３！？　全角スペース",
    # Others.
    "ქართული: მინას ვჭამ და არა მტკივა.",
    "Հայերեն: Կրնամ ապակի ուտել և ինծի անհանգիստ չըներ։",
    "አማርኛ: ብርጭቆ መብላት እችላለሁ፣ አይጎዳኝም።",
    "ᚠᛇᚻ᛫ᛒᛦᚦ᛫ᚠᚱᚩᚠᚢᚱ᛫ᚠᛁᚱᚪ᛫ᚷᛖᚻᚹᛦᛚᚳᚢᛗ",
    "Math: ∀x∈ℝ, ∃y: x² + y² ≥ 2xy; ∑ᵢ aᵢ = ∫₀^∞ f(t) dt ≈ π/√2 ± ε",
    "Currency: $1,234.56 €99,99 £5 ¥1000 ₹250 ₿0.001",
    "Mixed: naïve café résumé coöperate façade jalapeño",
    "Combining: e\u0301 a\u0308 o\u0303 n\u0303 — decomposed forms",
    "Zalgo: Z̷̢̛a̴̗̐l̶̰̍g̵͎̋ǒ̷͜ text",
]

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) {\n\tstd::cout << i << std::endl;\n}\n",
    "const add = (a, b) => a + b;\nconsole.log(`sum=${add(1, 2)}`);\n",
    "#include <vector>\ntemplate <typename T>\nT sum(const std::vector<T>& v) { T s{}; for (auto x : v) s += x; return s; }",
    '{"name": "tessera", "version": "0.1.0", "tags": ["llm", "cuda"], "ok": true, "n": null}',
    "<html>\n  <body class=\"main\">\n    <p>Hello &amp; welcome</p>\n  </body>\n</html>",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
    "if [ -f ~/.bashrc ]; then\n  source ~/.bashrc\nfi\necho \"$HOME\" | tr 'a-z' 'A-Z' >> /tmp/out.log 2>&1",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
    "x = [i**2 for i in range(100) if i % 3 == 0]  # squares of multiples of three",
    "    \n\t\t  return self._cache.get(key, None) or self.__missing__(key)",
    "a+=1;b-=2;c*=3;d/=4;e%=5;f<<=6;g>>=7;h&=8;i|=9;j^=10;k&&l||!m",
    "regex = r'^(?P<user>[\\w.+-]+)@(?P<host>[\\w-]+\\.[\\w.]+)$'",
    "Makefile:\nall: main.o util.o\n\t$(CC) -o app $^ $(LDFLAGS)\n",
    "// TODO(bob): fix this!!!\n/* multi\n   line */\n/** @param x the value */",
    "@dataclass\nclass Point:\n    x: float = 0.0\n    y: float = 0.0\n",
    "git commit -m \"fix: handle CRLF\\r\\n line endings\" && git push origin HEAD:refs/for/main",
]

EMOJI = [
    "😀😃😄😁😆😅🤣😂🙂🙃",
    "👨‍👩‍👧‍👦 family, 👩‍💻 coder, 🏳️‍🌈 flag, 🧑🏽‍🚀 astronaut",
    "👍🏻👍🏼👍🏽👍🏾👍🏿 skin tones",
    "🇺🇸🇫🇷🇯🇵🇩🇪🇧🇷 flags",
    "1️⃣2️⃣3️⃣#️⃣*️⃣ keycaps",
    "❤️💔💯🔥✨🎉🚀🌍🍕⚽",
    "I ❤️ NY! 🗽 ...and 🐍 Python 🐍🐍",
    "😀" * 20,
    "❤\ufe0f\u200d🔥 ❤\u200d🩹 🫶🏾 🪿",
]

SPECIAL_LIKE = [
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<|im_start|><|im_start|><|im_end|>",
    "<|im_start",
    "|im_start|>",
    "< |im_end| >",
    "<|IM_START|>",
    "<|im_end|>\n<|im_end|>",
    "<s> </s> <unk> <pad>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<repo_name>tessera<file_sep>main.py<filename>x.py<gh_stars>100",
    "<jupyter_start><jupyter_code>print(1)<jupyter_output>1",
    "  <|im_start|>  spaced  <|im_end|>  ",
    "<<|im_start|>>",
    "<|im_start|><|endoftext|",
    "<|reserved_special_token_0|> <|fim_prefix|> <|fim_middle|>",
    "[INST] hello [/INST] <<SYS>>\nsys\n<</SYS>>",
]

WHITESPACE_BITS = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2009", "\u200b",
                   "\u2028", "\u0085", "\u180e", "\u000b", "\u000c", "\u202f", "\u2003"]

NUMBERS = [
    "0", "7", "42", "123", "1234", "12345", "1234567890", "3.14159", "-0.5", "1e-10", "6.022e23",
    "1,234,567.89", "1 000 000", "+1 (555) 123-4567", "2024-03-15T12:34:56Z", "192.168.0.1",
    "0xDEADBEEF", "0b1011", "v1.2.3-rc.4", "50%", "½ ¼ ¾ ⅓", "x² y³ z⁴", "Ⅰ Ⅱ Ⅲ Ⅳ Ⅻ",
    "١٢٣٤٥ ٦٧٨٩٠", "१२३४५", "０１２３４５", "①②③", "𝟙𝟚𝟛", "9999999999999999999999",
    "3rd 21st 100th", "A1B2C3", "abc123def456", "  42  ", "\n1\n2\n3",
]

WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have "
         "from or one had by word but not what all were we when your can said there use an each "
         "which she do how their if will up other about out many then them these so some her "
         "would make like him into time has look two more write go see number no way could people "
         "my than first water been call who oil its now find long down day did get come made may part").split()

SAFE_CATEGORIES_EXCLUDED = {"Cn", "Cs", "Co"}


def random_unicode_char(rng):
    # Assigned, non-surrogate, non-private code points only: unassigned ones may differ
    # between the Unicode versions of PCRE2 and of the references' regex engines.
    while True:
        if rng.random() < 0.7:
            cp = rng.randint(0x20, 0xFFFF)
        else:
            cp = rng.randint(0x10000, 0x2FFFF)
        ch = chr(cp)
        if unicodedata.category(ch) not in SAFE_CATEGORIES_EXCLUDED:
            return ch


def random_word(rng):
    return rng.choice(WORDS)


def make_corpus(seed=1234):
    rng = random.Random(seed)
    out = []
    seen = set()

    def add(s):
        if s not in seen:
            seen.add(s)
            out.append(s)

    for group in (SENTENCES, CODE, EMOJI, SPECIAL_LIKE, NUMBERS):
        for s in group:
            add(s)
    add("")
    add(" ")
    add("a")
    # Whitespace runs, alone and around words (\s+(?!\S) treats the last space specially).
    for n in (1, 2, 3, 4, 5, 8, 16, 33, 64, 200):
        add(" " * n)
        add("\t" * n)
        add("\n" * n)
        add("x" + " " * n + "y")
        add(" " * n + "word")
        add("word" + " " * n)
        add("a\n" + " " * n + "b")
    for _ in range(250):
        parts = []
        for _ in range(rng.randint(1, 8)):
            parts.append(rng.choice(WHITESPACE_BITS) * rng.randint(1, 4))
            parts.append(rng.choice([random_word(rng), rng.choice(NUMBERS), ""]))
        add("".join(parts))
    # Sentence fragments and mixtures across scripts.
    pool = SENTENCES + CODE + EMOJI
    for _ in range(400):
        s = rng.choice(pool)
        i = rng.randint(0, len(s))
        j = rng.randint(i, min(len(s), i + rng.randint(1, 60)))
        t = rng.choice(pool)
        k = rng.randint(0, len(t))
        add(s[i:j] + rng.choice(["", " ", "\n", "  "]) + t[k:k + rng.randint(0, 40)])
    # Words with numbers and contractions in varied case.
    suffixes = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "'VE", "'D", "’s", "'x"]
    for _ in range(250):
        w = random_word(rng)
        w = rng.choice([w, w.upper(), w.capitalize()])
        add(w + rng.choice(suffixes) + rng.choice(["", " ", " " + random_word(rng), "!", "?"]))
    for _ in range(250):
        a = rng.choice(NUMBERS)
        b = str(rng.randint(0, 10 ** rng.randint(1, 15)))
        add(rng.choice(["", " ", "$", "#", "x", "v"]) + a + rng.choice([" ", "", "-", ".", ","]) + b)
    # Special-token lookalikes embedded in text.
    for _ in range(150):
        s = rng.choice(SPECIAL_LIKE)
        add(random_word(rng) + rng.choice(["", " ", "\n"]) + s + rng.choice(["", " ", "\n"]) + random_word(rng))
    # Random unicode.
    for _ in range(300):
        add("".join(random_unicode_char(rng) for _ in range(rng.randint(1, 24))))
    # Random printable ASCII soup (punctuation runs).
    for _ in range(200):
        add("".join(chr(rng.randint(0x20, 0x7E)) for _ in range(rng.randint(1, 40))))
    # Emoji mixtures.
    for _ in range(100):
        add(" ".join(rng.choice(EMOJI)[: rng.randint(1, 12)] for _ in range(rng.randint(1, 4))))
    # Long strings (a few kilobytes each), mixing everything above.
    everything = SENTENCES + CODE + EMOJI + SPECIAL_LIKE + NUMBERS
    for n in range(12):
        parts = []
        size = 0
        target = 2000 * (n + 1)
        while size < target:
            p = rng.choice(everything)
            parts.append(p)
            parts.append(rng.choice([" ", "\n", "\n\n", "\t", "  "]))
            size += len(p) + 1
        add("".join(parts))
    add("a" * 3000)
    add(" " * 3000)
    add("ab" * 1500)
    add("1" * 500)
    add("\n" * 1000 + "end")
    return out


# Byte strings that are not valid UTF-8, for the invalid-input rule (each ill-formed subpart
# becomes U+FFFD, as bytes.decode("utf-8", "replace") does).
INVALID_UTF8 = [
    b"\xff",
    b"abc\xffdef",
    b"\xc3",  # truncated 2-byte sequence
    b"caf\xc3",
    b"\xe2\x82",  # truncated 3-byte
    b"\xe2\x82 euro",
    b"\xf0\x9f\x98",  # truncated emoji
    b"\xf0\x9f\x98 smile",
    b"\x80\x80\x80",  # stray continuation bytes
    b"\xc0\xaf",  # overlong '/'
    b"\xed\xa0\x80",  # UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"<|im_start|>\xfe\xff<|im_end|>",
    b"ok \xe4\xbd\xa0\xe5\xa5 broken \xe5\xa5\xbd",
    b"\x00nul\x00",
]

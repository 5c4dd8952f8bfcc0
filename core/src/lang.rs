//! Script and language detection: which passages and questions are Chinese, Japanese or Korean
//! (CJK), where the English-only embedder is weak and lexical retrieval must carry the search.

/// A CJK ideograph, kana or hangul syllable.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF     // hiragana, katakana
        | 0x3400..=0x4DBF   // CJK extension A
        | 0x4E00..=0x9FFF   // CJK unified ideographs
        | 0xAC00..=0xD7AF   // hangul syllables
        | 0xF900..=0xFAFF   // compatibility ideographs
        | 0x20000..=0x2FA1F)
}

/// True when a text is mostly written in a CJK script: at least as many CJK characters as words
/// of other letters, since a CJK character carries about a word's worth of meaning. Latin
/// product names inside a Chinese sentence ("怎么在 LibreOffice Calc 里用 VLOOKUP？") do not
/// make it English, nor does a CJK name make an English sentence Chinese. (Counting letters
/// instead, with a quarter of CJK ones enough, called that Calc question English.)
pub fn is_cjk_text(text: &str) -> bool {
    let (mut cjk, mut words, mut in_word) = (0usize, 0usize, false);
    for c in text.chars() {
        if is_cjk(c) {
            cjk += 1;
            in_word = false;
        } else if c.is_alphabetic() {
            words += usize::from(!in_word);
            in_word = true;
        } else {
            in_word = false;
        }
    }
    cjk > 0 && cjk >= words
}

/// Language code of a passage: `zh`, `ja`, `ko` by script, otherwise what `whatlang` detects
/// (ISO 639-1 where it has one), or `und` when undecided.
pub fn detect_language(text: &str) -> String {
    if is_cjk_text(text) {
        let kana = text.chars().filter(|c| matches!(*c as u32, 0x3040..=0x30FF)).count();
        let hangul = text.chars().filter(|c| matches!(*c as u32, 0xAC00..=0xD7AF)).count();
        let han = text.chars().filter(|c| is_cjk(*c)).count() - kana - hangul;
        return if hangul > han {
            "ko"
        } else if kana > 0 {
            "ja"
        } else {
            "zh"
        }
        .to_string();
    }
    match whatlang::detect(text) {
        Some(info) if info.is_reliable() || text.split_whitespace().count() >= 8 => iso639_1(info.lang()).to_string(),
        _ => "und".to_string(),
    }
}

/// `text` cut into its maximal runs of CJK characters and of everything else, in order; `true`
/// marks a CJK run.
pub fn script_runs(text: &str) -> Vec<(bool, &str)> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut current = None;
    for (i, c) in text.char_indices() {
        let cjk = is_cjk(c);
        if current.is_some_and(|r| r != cjk) {
            runs.push((!cjk, &text[start..i]));
            start = i;
        }
        current = Some(cjk);
    }
    if let Some(cjk) = current {
        runs.push((cjk, &text[start..]));
    }
    runs
}

/// Whether a language code (from [`detect_language`]) is Chinese, Japanese or Korean.
pub fn is_cjk_language(code: &str) -> bool {
    matches!(code, "zh" | "ja" | "ko")
}

/// Language of one passage (`piece`, with the title and headings it is indexed with) of a
/// document in `doc_language`. A passage takes its document's language unless it holds none of
/// the document's script: a Chinese section of an English page is `zh`. An English passage
/// without a Chinese character in a Chinese document is `en`, unless the document `declared`
/// its language (`<html lang="zh-CN">`): then its reader is sent to a Chinese page, and a
/// Chinese page's passage that quotes English menu names is `zh` either way.
pub fn passage_language(piece: &str, doc_language: &str, doc_is_cjk: bool, declared: bool) -> String {
    let foreign = if doc_is_cjk { !declared && !piece.chars().any(is_cjk) } else { is_cjk_text(piece) };
    if foreign { detect_language(piece) } else { doc_language.to_string() }
}

/// The language a question is written in, as far as a short text allows telling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionLanguage {
    /// Mostly written in a CJK script.
    pub cjk: bool,
    /// ISO 639-1 code, when the text is CJK or long and clear enough for detection.
    pub code: Option<String>,
}

impl QuestionLanguage {
    pub fn of(text: &str) -> Self {
        let cjk = is_cjk_text(text);
        let code = if cjk {
            Some(detect_language(text))
        } else {
            whatlang::detect(text).filter(|info| info.is_reliable()).map(|info| iso639_1(info.lang()).to_string())
        };
        Self { cjk, code }
    }

    /// Whether a passage in `language` (a code from [`detect_language`]) is in the question's
    /// language. Undecided passages count as matching; when the question's own language is
    /// undecided, the script decides (CJK or not).
    pub fn matches(&self, language: &str) -> bool {
        if language == "und" {
            return true;
        }
        match &self.code {
            Some(code) => code == language,
            None => is_cjk_language(language) == self.cjk,
        }
    }
}

fn iso639_1(lang: whatlang::Lang) -> &'static str {
    use whatlang::Lang::*;
    match lang {
        Eng => "en",
        Deu => "de",
        Fra => "fr",
        Spa => "es",
        Por => "pt",
        Ita => "it",
        Nld => "nl",
        Rus => "ru",
        Ukr => "uk",
        Pol => "pl",
        Swe => "sv",
        Dan => "da",
        Nob => "no",
        Fin => "fi",
        Tur => "tr",
        Ces => "cs",
        Hun => "hu",
        Ron => "ro",
        Ell => "el",
        Heb => "he",
        Ara => "ar",
        Hin => "hi",
        Vie => "vi",
        Tha => "th",
        Ind => "id",
        Cmn => "zh",
        Jpn => "ja",
        Kor => "ko",
        other => other.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_runs_alternate_in_order() {
        assert_eq!(script_runs("打开 Writer，点击文件"), [(true, "打开"), (false, " Writer，"), (true, "点击文件")]);
        assert_eq!(script_runs("plain"), [(false, "plain")]);
        assert!(script_runs("").is_empty());
    }

    #[test]
    fn chinese_with_a_latin_product_name_is_cjk() {
        assert!(is_cjk_text("如何安装 Driftwood 服务器?"));
        assert_eq!(detect_language("如何安装 Driftwood 服务器?"), "zh");
        // Several long names: 5 characters against 22 Latin letters, but only 3 words.
        assert!(is_cjk_text("怎么在 LibreOffice Calc 里用 VLOOKUP？"));
        assert_eq!(detect_language("怎么在 LibreOffice Calc 里用 VLOOKUP？"), "zh");
        assert!(!is_cjk_text("How do I open 设置 in Writer?"), "a Chinese menu name in an English question");
    }

    #[test]
    fn english_is_not_cjk() {
        assert!(!is_cjk_text("How do I install the server behind a proxy?"));
        assert_eq!(detect_language("How do I install the server behind a corporate proxy with authentication?"), "en");
    }

    #[test]
    fn a_question_matches_passages_in_its_own_language() {
        let zh = QuestionLanguage::of("怎么给文档加页码？");
        assert!(zh.matches("zh") && !zh.matches("en"));
        let en = QuestionLanguage::of("how do I number the pages of my report from the second page on?");
        assert_eq!(en.code.as_deref(), Some("en"));
        assert!(en.matches("en") && !en.matches("zh") && !en.matches("de"));
        // Too short to tell English from other Latin-script languages: only the script counts.
        let short = QuestionLanguage::of("pivot table?");
        assert_eq!(short.code, None);
        assert!(short.matches("en") && short.matches("de") && !short.matches("zh"));
        assert!(short.matches("und") && zh.matches("und"));
    }

    #[test]
    fn a_passage_keeps_its_document_language_unless_it_lacks_the_document_script() {
        let mixed = "要实现悬挂缩进，在「文本之前」项输入一个正数值。The Hanging Indent icon is found in the Paragraph section of the Properties sidebar.";
        assert_eq!(passage_language(mixed, "zh", true, false), "zh");
        let untranslated = "The Hanging Indent icon is found in the Paragraph section of the Properties sidebar.";
        assert_eq!(passage_language(untranslated, "zh", true, false), "en");
        // An untranslated paragraph of a page declared Chinese belongs to that page.
        assert_eq!(passage_language(untranslated, "zh", true, true), "zh");
        assert_eq!(passage_language("运行安装程序并输入服务器地址。", "en", false, false), "zh");
        assert_eq!(passage_language("运行安装程序并输入服务器地址。", "en", false, true), "zh");
        assert_eq!(
            passage_language("Run the installer and enter the address of the server.", "en", false, false),
            "en"
        );
    }

    #[test]
    fn japanese_and_korean_are_told_apart() {
        assert_eq!(detect_language("パスワードをリセットする方法"), "ja");
        assert_eq!(detect_language("비밀번호를 재설정하는 방법"), "ko");
    }
}

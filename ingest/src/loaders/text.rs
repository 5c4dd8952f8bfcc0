//! Plain-text loader: the whole file is one section without a heading; the title is the file stem.

use supportbot_core::document::{Body, Document, Section};

use super::{LoadError, file_stem, tidy};

pub(super) fn load(source: &str, text: &str) -> Result<Document, LoadError> {
    let text = tidy(&clean_controls(text));
    if text.is_empty() {
        return Err(LoadError::Empty);
    }
    Ok(Document {
        source: source.to_owned(),
        title: file_stem(source),
        keywords: Vec::new(),
        language: None,
        body: Body::Sections(vec![Section { heading_path: Vec::new(), anchor: None, text }]),
    })
}

/// Form feeds (page breaks in old text files) become blank lines; tabs stay; other control
/// characters become spaces.
pub(super) fn clean_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{c}' => '\n',
            '\n' | '\t' => c,
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_section_titled_by_stem() {
        let doc =
            load("notes/release-notes.txt", "Release 2.0\n\n\n\nFixed   things.  \n\tIndented\x0cNext page\x07.\n")
                .unwrap();
        assert_eq!(doc.title, "release-notes");
        assert_eq!(doc.source, "notes/release-notes.txt");
        assert_eq!(
            doc.body,
            Body::Sections(vec![Section {
                heading_path: vec![],
                anchor: None,
                text: "Release 2.0\n\nFixed   things.\n\tIndented\nNext page .".into(),
            }])
        );
    }

    #[test]
    fn only_controls_is_empty() {
        assert_eq!(load("a.txt", "\x07\x0c\x0c"), Err(LoadError::Empty));
    }
}

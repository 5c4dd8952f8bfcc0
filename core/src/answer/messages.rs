//! Fixed texts the bot says in its own voice (abstaining, apologising, asking to shorten a
//! question), localized by the language of the question: Chinese, Japanese, Korean, and English
//! as the fallback.

/// The situations that have a fixed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Nothing in the documentation answers the question.
    NoAnswer,
    /// The request is not a support question (poems, role play, prompt extraction).
    OffTopic,
    /// A greeting or small talk.
    Greeting,
    /// The question is longer than the limit.
    TooLong,
    /// The message holds no question.
    Empty,
    /// Something failed inside; details are in the log, never in the chat.
    Apology,
}

/// The text for `notice` in `language` (a code such as `en` or `zh`).
pub fn text(notice: Notice, language: &str) -> &'static str {
    match (language, notice) {
        ("zh", Notice::NoAnswer) => {
            "抱歉，我在文档中没有找到这个问题的答案，所以不想随便猜测。如果需要，可以请人工客服来帮您。"
        }
        ("zh", Notice::OffTopic) => "我只能根据产品文档回答支持方面的问题。请告诉我您遇到的具体问题。",
        ("zh", Notice::Greeting) => "您好！请问有什么产品方面的问题需要帮助吗？",
        ("zh", Notice::TooLong) => "您的问题太长了，请把它缩短到一两句话再问一次。",
        ("zh", Notice::Empty) => "请输入您的问题。",
        ("zh", Notice::Apology) => "抱歉，处理您的问题时出了点问题。请稍后再试，或请人工客服帮助。",
        ("ja", Notice::NoAnswer) => {
            "申し訳ありません。ドキュメントにこの質問の答えが見つからなかったため、推測でお答えするのは控えます。\
             よろしければ、担当者がお手伝いします。"
        }
        ("ja", Notice::OffTopic) => {
            "製品ドキュメントに基づくサポートのご質問にのみお答えできます。どのようなことでお困りですか？"
        }
        ("ja", Notice::Greeting) => "こんにちは！製品について何かお手伝いできることはありますか？",
        ("ja", Notice::TooLong) => "ご質問が長すぎます。一、二文に短くして、もう一度お尋ねください。",
        ("ja", Notice::Empty) => "ご質問を入力してください。",
        ("ja", Notice::Apology) => {
            "申し訳ありません。回答中に問題が発生しました。しばらくしてからもう一度お試しいただくか、担当者にお尋ねください。"
        }
        ("ko", Notice::NoAnswer) => {
            "죄송합니다. 문서에서 이 질문에 대한 답을 찾지 못해 추측으로 답하지 않겠습니다. \
             원하시면 담당자가 도와드릴 수 있습니다."
        }
        ("ko", Notice::OffTopic) => {
            "제품 문서를 바탕으로 한 지원 질문에만 답할 수 있습니다. 어떤 문제를 겪고 계신가요?"
        }
        ("ko", Notice::Greeting) => "안녕하세요! 제품에 관해 무엇을 도와드릴까요?",
        ("ko", Notice::TooLong) => "질문이 너무 깁니다. 한두 문장으로 줄여서 다시 질문해 주세요.",
        ("ko", Notice::Empty) => "질문을 입력해 주세요.",
        ("ko", Notice::Apology) => {
            "죄송합니다. 답변하는 중에 문제가 발생했습니다. 잠시 후 다시 시도하시거나 담당자에게 문의해 주세요."
        }
        (_, Notice::NoAnswer) => {
            "Sorry, I couldn't find the answer to that in the documentation, so I'd rather not guess. \
             If you like, a person from the team can help you."
        }
        (_, Notice::OffTopic) => {
            "I can only help with support questions, answered from the product documentation. \
             What are you trying to do?"
        }
        (_, Notice::Greeting) => "Hi! What can I help you with? Ask me anything about the product.",
        (_, Notice::TooLong) => "That question is too long for me. Could you shorten it to a sentence or two?",
        (_, Notice::Empty) => "Please type your question.",
        (_, Notice::Apology) => {
            "Sorry, something went wrong while answering. Please try again in a moment, or ask for a person."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japanese_and_korean_questions_get_notices_in_their_language() {
        let kana = |t: &str| t.chars().any(|c| ('\u{3040}'..='\u{30ff}').contains(&c));
        let hangul = |t: &str| t.chars().any(|c| ('\u{ac00}'..='\u{d7af}').contains(&c));
        for notice in
            [Notice::NoAnswer, Notice::OffTopic, Notice::Greeting, Notice::TooLong, Notice::Empty, Notice::Apology]
        {
            assert!(kana(text(notice, "ja")), "{notice:?}");
            assert!(hangul(text(notice, "ko")), "{notice:?}");
            assert!(text(notice, "de").is_ascii(), "English is the fallback: {notice:?}");
        }
    }
}

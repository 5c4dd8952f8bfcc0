//! Fixed texts the bot says in its own voice (abstaining, apologising, asking to shorten a
//! question), localized by the language of the question. English is the fallback.

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

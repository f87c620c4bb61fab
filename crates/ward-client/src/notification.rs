//! What a desktop notification may say about new messages, by the notification level in force.
//!
//! The notification centre is outside Ward's protection: other apps, the lock screen and anyone
//! passing the screen can read it. So the default says only "New secure message", a sender's name
//! needs the clinician's or the organization's choice, and text needs the organization's policy
//! (`EffectiveSettings` never lets a user choose `content`). The conversation's name is never
//! shown, as care-team names often name the patient.

use crate::client::ShownMessage;
use crate::policy::NotificationLevel;

/// The generic text, which carries nothing about the message.
pub const GENERIC_BODY: &str = "New secure message";
/// The longest message text a `content` notification shows.
const CONTENT_CHARS: usize = 120;

/// One notification to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The conversation a click opens. It stays inside Ward: it is never sent to the notification
    /// service.
    pub chat_id: String,
    /// The title line.
    pub summary: String,
    /// The text under it.
    pub body: String,
}

/// The notifications for `arrived`, at most one per conversation (one in all at the generic
/// level). Messages this clinician sent, deleted ones, and those in `open_chat` (the conversation
/// on screen in a focused window) raise none.
pub fn notifications_for(
    level: NotificationLevel,
    arrived: &[ShownMessage],
    open_chat: Option<&str>,
) -> Vec<Notification> {
    let news: Vec<&ShownMessage> = arrived
        .iter()
        .filter(|message| !message.mine && !message.deleted)
        .filter(|message| open_chat != Some(message.chat_id.as_str()))
        .collect();
    let Some(last) = news.last() else {
        return Vec::new();
    };
    match level {
        NotificationLevel::None => Vec::new(),
        NotificationLevel::Generic => vec![Notification {
            chat_id: last.chat_id.clone(),
            summary: "Ward".to_owned(),
            body: GENERIC_BODY.to_owned(),
        }],
        NotificationLevel::Sender | NotificationLevel::Content => {
            let mut latest: Vec<&ShownMessage> = Vec::new();
            for message in news {
                match latest
                    .iter_mut()
                    .find(|seen| seen.chat_id == message.chat_id)
                {
                    Some(seen) => *seen = message,
                    None => latest.push(message),
                }
            }
            latest
                .into_iter()
                .map(|message| {
                    let (summary, body) = if level == NotificationLevel::Content {
                        (message.sender.clone(), content_line(message))
                    } else {
                        (
                            "Ward".to_owned(),
                            format!("{GENERIC_BODY} from {}", message.sender),
                        )
                    };
                    Notification {
                        chat_id: message.chat_id.clone(),
                        summary,
                        body,
                    }
                })
                .collect()
        }
    }
}

fn content_line(message: &ShownMessage) -> String {
    if message.kind == "attachment" {
        return "Sent a file".to_owned();
    }
    let mut text: String = message.text.chars().take(CONTENT_CHARS).collect();
    if message.text.chars().count() > CONTENT_CHARS {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTINEL: &str = "K+ 6.9 bed 12";

    fn message(chat: &str, sender: &str, mine: bool) -> ShownMessage {
        ShownMessage {
            chat_id: chat.to_owned(),
            chat: "Bed 12 Mrs Example".to_owned(),
            sender: sender.to_owned(),
            sender_id: "00".to_owned(),
            client_id: "01".to_owned(),
            sequence: Some(1),
            kind: "text".to_owned(),
            text: SENTINEL.to_owned(),
            size: None,
            status: "received".to_owned(),
            edited: false,
            deleted: false,
            mine,
            at: 0,
            media_type: None,
            row: 0,
        }
    }

    fn says(notifications: &[Notification]) -> String {
        notifications
            .iter()
            .map(|n| format!("{}|{}", n.summary, n.body))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_default_says_nothing_but_new_secure_message() {
        let arrived = [message("a", "Dr Bob", false), message("b", "Dr Eve", false)];
        let shown = notifications_for(NotificationLevel::Generic, &arrived, None);
        assert_eq!(says(&shown), "Ward|New secure message");
        assert_eq!(shown[0].chat_id, "b");
    }

    #[test]
    fn sender_level_names_the_sender_once_per_conversation_and_never_the_text_or_team() {
        let arrived = [
            message("a", "Dr Bob", false),
            message("a", "Dr Bob", false),
            message("b", "Dr Eve", false),
        ];
        let shown = notifications_for(NotificationLevel::Sender, &arrived, None);
        assert_eq!(
            says(&shown),
            "Ward|New secure message from Dr Bob\nWard|New secure message from Dr Eve"
        );
        assert!(!says(&shown).contains(SENTINEL) && !says(&shown).contains("Bed 12"));
    }

    #[test]
    fn content_only_at_the_content_level() {
        let arrived = [message("a", "Dr Bob", false)];
        assert_eq!(
            says(&notifications_for(
                NotificationLevel::Content,
                &arrived,
                None
            )),
            format!("Dr Bob|{SENTINEL}")
        );
        assert!(notifications_for(NotificationLevel::None, &arrived, None).is_empty());
    }

    #[test]
    fn own_messages_and_the_open_conversation_raise_nothing() {
        let arrived = [message("a", "Me", true), message("b", "Dr Eve", false)];
        assert!(notifications_for(NotificationLevel::Sender, &arrived, Some("b")).is_empty());
        assert_eq!(
            notifications_for(NotificationLevel::Sender, &arrived, Some("a")).len(),
            1
        );
    }
}

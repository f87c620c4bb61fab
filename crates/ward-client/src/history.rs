//! Reading the local history for the app: full-text search over message text.
//!
//! The index (`message_search`, FTS5) sits inside the SQLCipher file with the messages, so
//! searching never leaves a plaintext copy anywhere. The clinician's words are never passed to
//! FTS5 as query syntax: each becomes a quoted prefix term.

use rusqlite::{params, Connection};

use crate::store::StoreError;

/// Marks the start of a matched word in [`SearchHit::snippet`].
pub const MATCH_START: char = '\u{1}';
/// Marks the end of a matched word in [`SearchHit::snippet`].
pub const MATCH_END: char = '\u{2}';

/// A message that matched a search.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchHit {
    /// The conversation's id, hex.
    pub chat_id: String,
    /// The conversation's name (a 1:1 chat is named after the other clinician).
    pub chat: String,
    /// The care team's patient tag.
    pub patient_tag: Option<String>,
    /// The message's client id, hex: the chat view scrolls to it.
    pub client_id: String,
    /// The sender's name.
    pub sender: String,
    /// When this device stored it, seconds since the epoch.
    pub at: i64,
    /// The text around the match, matched words between [`MATCH_START`] and [`MATCH_END`].
    pub snippet: String,
}

/// The FTS5 query for what the clinician typed: every word must appear, as a word prefix.
/// Quotes make each word a plain string, so `AND`, `NEAR(` or `*` typed by a clinician are text.
pub fn match_expression(query: &str) -> Option<String> {
    let terms: Vec<String> = query
        .split_whitespace()
        .map(|word| format!("\"{}\"*", word.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Messages whose text matches `query`, newest first, at most `limit`.
pub fn search(
    connection: &Connection,
    me: &[u8],
    query: &str,
    patient_tag: Option<&str>,
    limit: usize,
) -> Result<Vec<SearchHit>, StoreError> {
    let Some(expression) = match_expression(query) else {
        return Ok(Vec::new());
    };
    let patient_tag = patient_tag.map(str::trim).filter(|tag| !tag.is_empty());
    let mut statement = connection.prepare_cached(
        "SELECT lower(hex(message.group_id)),
                CASE WHEN conversation.direct THEN coalesce(
                    (SELECT contact.name FROM conversation_member JOIN contact USING (user_id)
                     WHERE conversation_member.group_id = conversation.group_id
                       AND conversation_member.user_id != ?2 LIMIT 1),
                    conversation.name)
                ELSE conversation.name END,
                conversation.patient_tag, lower(hex(message.client_id)),
                coalesce(sender.name, 'unknown clinician'), message.at,
                snippet(message_search, 0, char(1), char(2), '…', 16)
         FROM message_search
         JOIN message ON message.id = message_search.rowid
         JOIN conversation ON conversation.group_id = message.group_id
         LEFT JOIN contact AS sender ON sender.user_id = message.sender_user
         WHERE message_search MATCH ?1 AND message.deleted = 0
           AND (?3 IS NULL OR conversation.patient_tag = ?3 COLLATE NOCASE)
         ORDER BY message.at DESC, message.id DESC
         LIMIT ?4",
    )?;
    let rows = statement.query_map(
        params![
            expression,
            me,
            patient_tag,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |row| {
            Ok(SearchHit {
                chat_id: row.get(0)?,
                chat: row.get(1)?,
                patient_tag: row.get(2)?,
                client_id: row.get(3)?,
                sender: row.get(4)?,
                at: row.get(5)?,
                snippet: row.get(6)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_words_are_never_query_syntax() {
        assert_eq!(match_expression("  "), None);
        assert_eq!(
            match_expression("K+ NEAR(\"x"),
            Some("\"K+\"* \"NEAR(\"\"x\"*".to_owned())
        );
    }
}

//! A care team's name, its members' roles and the patient it is about. This is carried only inside
//! MLS, as a group context extension that every member holds encrypted and the relay never sees;
//! it must never go into a [`crate::WireMessage`] field or a log.
//!
//! The encoding starts with its own version, a `u8` that is 1 here.

use crate::codec::{Decode, DecodeError, Encode, EncodeError, Reader, Writer, MAX_LABEL_LEN};
use crate::ids::UserId;

/// The version every [`GroupData`] starts with.
pub const GROUP_DATA_VERSION: u8 = 1;

const ADMIN: u8 = 1;
const MEMBER: u8 = 2;

/// The care team behind one MLS group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupData {
    /// The team's name, such as "Ward 4B night"; at most [`MAX_LABEL_LEN`] bytes.
    pub name: String,
    /// The patient the team is about, as the hospital tags them; at most [`MAX_LABEL_LEN`] bytes.
    pub patient_tag: Option<String>,
    /// Each member's role. A user appears at most once; the encoding keeps the order given.
    pub roles: Vec<(UserId, MemberRole)>,
}

/// What a member may do in a care team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberRole {
    /// May add and remove members and rename the team.
    Admin,
    /// May read and send messages.
    Member,
}

impl Encode for MemberRole {
    fn encode(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u8(match self {
            Self::Admin => ADMIN,
            Self::Member => MEMBER,
        });
        Ok(())
    }
}

impl Decode for MemberRole {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8()? {
            ADMIN => Ok(Self::Admin),
            MEMBER => Ok(Self::Member),
            tag => Err(DecodeError::UnknownTag {
                what: "member role",
                tag,
            }),
        }
    }
}

/// Whether a user is listed twice, which would leave their role ambiguous.
fn has_duplicate(roles: &[(UserId, MemberRole)]) -> bool {
    let mut users: Vec<&UserId> = roles.iter().map(|(user, _)| user).collect();
    users.sort_unstable();
    users.windows(2).any(|pair| pair[0] == pair[1])
}

impl Encode for GroupData {
    fn encode(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        if has_duplicate(&self.roles) {
            return Err(EncodeError::DuplicateMember);
        }
        writer.u8(GROUP_DATA_VERSION);
        writer.string("group name", &self.name, MAX_LABEL_LEN)?;
        writer.option(self.patient_tag.as_ref(), |writer, tag| {
            writer.string("patient tag", tag, MAX_LABEL_LEN)
        })?;
        writer.vector("member roles", &self.roles, |writer, (user, role)| {
            user.encode(writer)?;
            role.encode(writer)
        })
    }
}

impl Decode for GroupData {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = reader.u8()?;
        if version != GROUP_DATA_VERSION {
            return Err(DecodeError::UnknownVersion(version.into()));
        }
        let name = reader.string("group name", MAX_LABEL_LEN)?.to_owned();
        let patient_tag = reader.option(|reader| {
            reader
                .string("patient tag", MAX_LABEL_LEN)
                .map(str::to_owned)
        })?;
        let roles = reader.vector("member roles", |reader| {
            Ok((UserId::decode(reader)?, MemberRole::decode(reader)?))
        })?;
        if has_duplicate(&roles) {
            return Err(DecodeError::DuplicateMember);
        }
        Ok(Self {
            name,
            patient_tag,
            roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(roles: Vec<(UserId, MemberRole)>) -> GroupData {
        GroupData {
            name: "Ward 4B".to_owned(),
            patient_tag: None,
            roles,
        }
    }

    #[test]
    fn a_member_listed_twice_is_neither_written_nor_read() {
        let twice = team(vec![
            (UserId([1; 16]), MemberRole::Admin),
            (UserId([2; 16]), MemberRole::Member),
            (UserId([1; 16]), MemberRole::Member),
        ]);
        assert_eq!(twice.to_bytes(), Err(EncodeError::DuplicateMember));

        let once = team(vec![
            (UserId([1; 16]), MemberRole::Admin),
            (UserId([2; 16]), MemberRole::Member),
        ]);
        let mut bytes = once.to_bytes().unwrap();
        // Rewrite the second member's id into the first's.
        let second = bytes.len() - 17;
        bytes[second..second + 16].copy_from_slice(&[1; 16]);
        assert_eq!(
            GroupData::from_bytes(&bytes),
            Err(DecodeError::DuplicateMember)
        );
    }

    #[test]
    fn other_versions_and_roles_are_refused() {
        assert_eq!(
            GroupData::from_bytes(&[0, 0, 0, 0]),
            Err(DecodeError::UnknownVersion(0))
        );
        let mut bytes = team(vec![(UserId([1; 16]), MemberRole::Admin)])
            .to_bytes()
            .unwrap();
        let last = bytes.len() - 1;
        bytes[last] = 3;
        assert_eq!(
            GroupData::from_bytes(&bytes),
            Err(DecodeError::UnknownTag {
                what: "member role",
                tag: 3
            })
        );
    }
}

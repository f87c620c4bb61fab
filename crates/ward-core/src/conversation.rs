//! Conversations: MLS groups through openmls, on Ward's ring provider.
//!
//! A 1:1 chat is a group of two users; a care team is a larger group; each device is a leaf. The
//! core does no IO: every call takes bytes and returns the [`WireMessage`] to send, and the caller
//! sends it and reports back. A commit stays pending until the caller says the relay accepted it
//! ([`Conversation::commit_accepted`]) or that the epoch moved ([`Conversation::epoch_moved`]): then
//! the pending commit is discarded, the missed commits are applied and the same change is made again.
//!
//! Every handshake and application message is an MLS PrivateMessage, so the relay sees neither who
//! joined nor the team's name, roles or patient tag: those live in an encrypted group context
//! extension ([`GROUP_DATA_EXTENSION`]). Each new member's credential chain is checked before a
//! commit or welcome is merged. Secrets of past epochs are deleted after [`PAST_EPOCHS_KEPT`]
//! epochs. Nothing here logs content, names or keys.

use std::collections::{HashSet, VecDeque};

use openmls::prelude::{
    tls_codec::{Deserialize as _, Serialize as _},
    BasicCredential, Capabilities, Credential, CredentialType, CredentialWithKey, Extension,
    ExtensionType, Extensions, GroupContext, GroupId as MlsGroupId, KeyPackage, KeyPackageIn,
    LeafNode, LeafNodeIndex, MlsGroup, MlsGroupCreateConfig, MlsGroupJoinConfig, MlsMessageBodyIn,
    MlsMessageIn, MlsMessageOut, ProcessedMessageContent, ProtocolVersion,
    RequiredCapabilitiesExtension, SenderRatchetConfiguration, StagedWelcome, UnknownExtension,
    PURE_CIPHERTEXT_WIRE_FORMAT_POLICY,
};
use openmls_traits::OpenMlsProvider;
use ward_proto::{
    AppContent, ClientMessageId, Decode, DeviceId, Encode, GroupData, GroupId, UserId,
    WelcomeBundle, WireMessage,
};
use zeroize::Zeroizing;

use crate::identity::{DeviceCredential, DeviceKey, IdentityError};
use crate::mls_provider::{WardProvider, WARD_CIPHERSUITE};

/// The group context extension that carries [`GroupData`], from the private-use range.
pub const GROUP_DATA_EXTENSION: u16 = 0xF0A1;
/// How many past epochs keep their message keys, for application messages that arrive after a
/// commit. Older secrets are deleted, which bounds what a stolen device state could decrypt.
pub const PAST_EPOCHS_KEPT: usize = 3;
/// How far out of order a sender's messages may arrive within one epoch.
const OUT_OF_ORDER_TOLERANCE: u32 = 64;
/// How many of one sender's messages may be skipped before the rest are refused.
const MAX_FORWARD_DISTANCE: u32 = 1000;
/// How many client message ids each conversation remembers, to show a re-sent message once.
const REMEMBERED_IDS: usize = 4096;

/// Why a conversation call failed. Variants carry no content and no key bytes.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// The bytes are not a message of the kind expected here.
    #[error("the message is malformed")]
    Malformed,
    /// The message belongs to another conversation.
    #[error("the message belongs to another conversation")]
    WrongConversation,
    /// This message was already decrypted once: a replay, or a duplicate delivery.
    #[error("the message was already received")]
    Replayed,
    /// The message is from an epoch whose keys are gone, or from one not reached yet.
    #[error("the message is from an epoch this device has no keys for")]
    WrongEpoch,
    /// The message could not be decrypted or authenticated.
    #[error("the message could not be decrypted")]
    Undecryptable,
    /// The message was sent by this device; its effect is applied through `commit_accepted`.
    #[error("the message was sent by this device")]
    OwnMessage,
    /// A member's credential does not check out.
    #[error("a member's identity could not be verified: {0}")]
    Identity(#[from] IdentityError),
    /// The team's name, roles or patient tag are missing or malformed.
    #[error("the conversation's group data is missing or malformed")]
    BadGroupData,
    /// A change is still waiting for the relay's answer.
    #[error("a change to the conversation is still waiting for the relay")]
    ChangePending,
    /// There is no pending change to confirm.
    #[error("there is no pending change")]
    NothingPending,
    /// This device is no longer a member.
    #[error("this device is no longer a member of the conversation")]
    NotAMember,
    /// openmls refused the operation; `operation` names it for IT, without content.
    #[error("the group operation \"{operation}\" failed")]
    Mls {
        /// Which operation failed.
        operation: &'static str,
    },
}

/// Shorthand for a conversation call's result.
pub type Result<T> = std::result::Result<T, ConversationError>;

fn mls<E>(operation: &'static str) -> impl FnOnce(E) -> ConversationError {
    move |_| ConversationError::Mls { operation }
}

/// A device that takes part in conversations: its MLS state, its signing key and its credential.
pub struct Device {
    provider: WardProvider,
    key: DeviceKey,
    credential: DeviceCredential,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

fn capabilities() -> Capabilities {
    Capabilities::builder()
        .extensions(vec![ExtensionType::Unknown(GROUP_DATA_EXTENSION)])
        .credentials(vec![CredentialType::Basic])
        .build()
}

fn group_extensions(data: &GroupData) -> Result<Extensions<GroupContext>> {
    let bytes = data
        .to_bytes()
        .map_err(|_| ConversationError::BadGroupData)?;
    Extensions::from_vec(vec![
        Extension::RequiredCapabilities(RequiredCapabilitiesExtension::new(
            &[ExtensionType::Unknown(GROUP_DATA_EXTENSION)],
            &[],
            &[CredentialType::Basic],
        )),
        Extension::Unknown(GROUP_DATA_EXTENSION, UnknownExtension(bytes)),
    ])
    .map_err(|_| ConversationError::BadGroupData)
}

fn read_group_data(extensions: &Extensions<GroupContext>) -> Result<GroupData> {
    let extension = extensions
        .unknown(GROUP_DATA_EXTENSION)
        .ok_or(ConversationError::BadGroupData)?;
    GroupData::from_bytes(&extension.0).map_err(|_| ConversationError::BadGroupData)
}

/// The Ward credential inside an MLS credential, checked against the leaf's signature key.
fn verified_credential(credential: &Credential, signature_key: &[u8]) -> Result<DeviceCredential> {
    let basic = BasicCredential::try_from(credential.clone())
        .map_err(|_| IdentityError::MalformedCredential)?;
    let device = DeviceCredential::decode_verified(basic.identity())?;
    if device.device_key.as_slice() != signature_key {
        return Err(IdentityError::KeyMismatch.into());
    }
    Ok(device)
}

/// The Ward credential of a leaf about to enter the tree (a key package's, or an updated one).
fn verified_leaf(leaf: &LeafNode) -> Result<DeviceCredential> {
    verified_credential(leaf.credential(), leaf.signature_key().as_slice())
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(PAST_EPOCHS_KEPT)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(
            OUT_OF_ORDER_TOLERANCE,
            MAX_FORWARD_DISTANCE,
        ))
        .use_ratchet_tree_extension(true)
        .build()
}

impl Device {
    /// A device with fresh MLS state. The credential must be valid and vouch for `key`.
    pub fn new(key: DeviceKey, credential: DeviceCredential) -> Result<Self> {
        Self::with_provider(WardProvider::default(), key, credential)
    }

    /// A device whose MLS state [`Device::save_state`] returned earlier.
    pub fn restore(key: DeviceKey, credential: DeviceCredential, state: &[u8]) -> Result<Self> {
        let provider = WardProvider::load_state(state).map_err(mls("load state"))?;
        Self::with_provider(provider, key, credential)
    }

    fn with_provider(
        provider: WardProvider,
        key: DeviceKey,
        credential: DeviceCredential,
    ) -> Result<Self> {
        credential.verify()?;
        if credential.device_key != key.public_key() {
            return Err(IdentityError::KeyMismatch.into());
        }
        Ok(Self {
            provider,
            key,
            credential,
        })
    }

    /// The device's MLS state, secret keys included, for the encrypted local store only.
    pub fn save_state(&self) -> Result<Zeroizing<Vec<u8>>> {
        self.provider.save_state().map_err(mls("save state"))
    }

    /// This device's signing key, which also signs the relay's sign-in challenges.
    pub fn key(&self) -> &DeviceKey {
        &self.key
    }

    /// This device's credential.
    pub fn credential(&self) -> &DeviceCredential {
        &self.credential
    }

    fn credential_with_key(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.credential.encode()).into(),
            signature_key: self.key.public_key().to_vec().into(),
        }
    }

    fn key_package(&self, last_resort: bool) -> Result<Vec<u8>> {
        let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities());
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(
                WARD_CIPHERSUITE,
                &self.provider,
                &self.key,
                self.credential_with_key(),
            )
            .map_err(mls("create key package"))?;
        bundle
            .key_package()
            .tls_serialize_detached()
            .map_err(mls("encode key package"))
    }

    /// `count` one-time KeyPackages for the relay, each claimable once.
    pub fn key_packages(&self, count: usize) -> Result<Vec<Vec<u8>>> {
        (0..count).map(|_| self.key_package(false)).collect()
    }

    /// The KeyPackage the relay hands out when the one-time ones have run out.
    pub fn last_resort_key_package(&self) -> Result<Vec<u8>> {
        self.key_package(true)
    }

    /// Starts a conversation with the devices whose KeyPackages the relay handed out. The commit
    /// that adds them comes back for the caller to send, pending until the relay accepts it.
    pub fn create_conversation(
        &self,
        group: GroupId,
        data: &GroupData,
        key_packages: &[Vec<u8>],
    ) -> Result<(Conversation, Option<WireMessage>)> {
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(WARD_CIPHERSUITE)
            .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
            .max_past_epochs(PAST_EPOCHS_KEPT)
            .sender_ratchet_configuration(SenderRatchetConfiguration::new(
                OUT_OF_ORDER_TOLERANCE,
                MAX_FORWARD_DISTANCE,
            ))
            .use_ratchet_tree_extension(true)
            .capabilities(capabilities())
            .with_group_context_extensions(group_extensions(data)?)
            .build();
        let mls_group = MlsGroup::new_with_group_id(
            &self.provider,
            &self.key,
            &config,
            MlsGroupId::from_slice(group.as_bytes()),
            self.credential_with_key(),
        )
        .map_err(mls("create group"))?;
        let mut conversation = Conversation::new(mls_group);
        let commit = if key_packages.is_empty() {
            None
        } else {
            Some(conversation.add_members(self, key_packages)?)
        };
        Ok((conversation, commit))
    }

    /// Joins the conversation a Welcome invites this device to, after checking every member's
    /// credential and the group data.
    pub fn join(&self, welcome: &[u8]) -> Result<Conversation> {
        let message = MlsMessageIn::tls_deserialize_exact(welcome)
            .map_err(|_| ConversationError::Malformed)?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err(ConversationError::Malformed);
        };
        let staged = StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None)
            .map_err(mls("process welcome"))?;
        // The relay routes by 16-byte group ids; a Welcome for any other shape is not Ward's.
        if staged.group_context().group_id().as_slice().len() != GroupId::LEN {
            return Err(ConversationError::Malformed);
        }
        for member in staged.members() {
            verified_credential(&member.credential, &member.signature_key)?;
        }
        read_group_data(staged.group_context().extensions())?;
        let group = staged
            .into_group(&self.provider)
            .map_err(mls("join group"))?;
        Ok(Conversation::new(group))
    }

    /// The conversation with this id, from the device's saved state.
    pub fn conversation(&self, group: &GroupId) -> Result<Option<Conversation>> {
        MlsGroup::load(
            self.provider.storage(),
            &MlsGroupId::from_slice(group.as_bytes()),
        )
        .map(|group| group.map(Conversation::new))
        .map_err(mls("load group"))
    }
}

/// A change to the membership or the group data, kept so it can be made again when another
/// member's commit wins the race for the epoch.
#[derive(Debug, Clone)]
enum Change {
    /// Key packages, each with the device its verified credential names.
    Add(Vec<(KeyPackage, DeviceId)>),
    RemoveDevices(Vec<DeviceId>),
    SelfUpdate,
    SetGroupData(GroupData),
}

/// What an incoming message meant.
#[derive(Debug)]
pub enum Received {
    /// A member sent content.
    Message {
        /// Who sent it; the credential chain is verified.
        sender: DeviceCredential,
        /// What they sent.
        content: AppContent,
    },
    /// Content whose client message id was already shown: a re-send after a lost ack.
    Duplicate {
        /// The id shown before.
        id: ClientMessageId,
    },
    /// A member's commit changed the conversation.
    Changed(GroupChange),
}

/// What a commit changed.
#[derive(Debug)]
pub struct GroupChange {
    /// The epoch the conversation is in now.
    pub epoch: u64,
    /// Devices that joined, with verified credentials.
    pub added: Vec<DeviceCredential>,
    /// Devices that left or were removed.
    pub removed: Vec<DeviceCredential>,
    /// The team's name, roles and patient tag after the commit.
    pub group_data: GroupData,
    /// This device was removed and can no longer read or send.
    pub removed_self: bool,
}

/// One conversation on one device.
pub struct Conversation {
    group: MlsGroup,
    pending: Option<Change>,
    seen: VecDeque<ClientMessageId>,
    seen_set: HashSet<ClientMessageId>,
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation")
            .field("id", &self.id())
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

impl Conversation {
    fn new(group: MlsGroup) -> Self {
        Self {
            group,
            pending: None,
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
        }
    }

    /// The conversation's id, as the relay routes it.
    pub fn id(&self) -> GroupId {
        let mut id = [0u8; GroupId::LEN];
        let bytes = self.group.group_id().as_slice();
        if bytes.len() == GroupId::LEN {
            id.copy_from_slice(bytes);
        }
        GroupId(id)
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.group.epoch().as_u64()
    }

    /// A value every member computes identically in an epoch; members that disagree are forked.
    pub fn epoch_authenticator(&self) -> Vec<u8> {
        self.group.epoch_authenticator().as_slice().to_vec()
    }

    /// Whether this device is still a member.
    pub fn is_active(&self) -> bool {
        self.group.is_active()
    }

    /// The team's name, roles and patient tag.
    pub fn group_data(&self) -> Result<GroupData> {
        read_group_data(self.group.extensions())
    }

    /// The member devices, with verified credentials.
    pub fn members(&self) -> Result<Vec<DeviceCredential>> {
        self.group
            .members()
            .map(|member| verified_credential(&member.credential, &member.signature_key))
            .collect()
    }

    /// Whether a change waits for the relay's answer. openmls keeps the pending commit in the
    /// saved state, so this holds across a restart too.
    pub fn has_pending_change(&self) -> bool {
        self.pending.is_some() || self.group.pending_commit().is_some()
    }

    /// Encrypts `content` for the members, padded to its size bucket.
    pub fn send(&mut self, device: &Device, content: &AppContent) -> Result<WireMessage> {
        if self.has_pending_change() {
            return Err(ConversationError::ChangePending);
        }
        let padded = Zeroizing::new(
            content
                .to_padded()
                .map_err(|_| ConversationError::Malformed)?,
        );
        let epoch = self.epoch();
        let message = self
            .group
            .create_message(&device.provider, &device.key, &padded)
            .map_err(|_| {
                if self.group.is_active() {
                    ConversationError::Mls {
                        operation: "encrypt message",
                    }
                } else {
                    ConversationError::NotAMember
                }
            })?;
        if let Some(id) = content_id(content) {
            self.remember(id);
        }
        Ok(WireMessage::Application {
            group: self.id(),
            epoch,
            message: to_bytes(&message)?,
        })
    }

    /// Adds the devices whose KeyPackages the relay handed out.
    pub fn add_members(
        &mut self,
        device: &Device,
        key_packages: &[Vec<u8>],
    ) -> Result<WireMessage> {
        let mut validated = Vec::with_capacity(key_packages.len());
        for bytes in key_packages {
            let key_package = KeyPackageIn::tls_deserialize_exact(bytes)
                .map_err(|_| ConversationError::Malformed)?
                .validate(device.provider.crypto(), ProtocolVersion::Mls10)
                .map_err(|_| ConversationError::Identity(IdentityError::MalformedCredential))?;
            let device_id = verified_leaf(key_package.leaf_node())?.device;
            validated.push((key_package, device_id));
        }
        self.propose(device, Change::Add(validated))
    }

    /// Removes these devices.
    pub fn remove_devices(&mut self, device: &Device, devices: &[DeviceId]) -> Result<WireMessage> {
        self.propose(device, Change::RemoveDevices(devices.to_vec()))
    }

    /// Removes every device of these users.
    pub fn remove_users(&mut self, device: &Device, users: &[UserId]) -> Result<WireMessage> {
        let devices = self
            .members()?
            .into_iter()
            .filter(|member| users.contains(&member.user))
            .map(|member| member.device)
            .collect();
        self.propose(device, Change::RemoveDevices(devices))
    }

    /// Replaces this device's leaf keys, for post-compromise security.
    pub fn self_update(&mut self, device: &Device) -> Result<WireMessage> {
        self.propose(device, Change::SelfUpdate)
    }

    /// Renames the team, changes roles or the patient tag.
    pub fn set_group_data(&mut self, device: &Device, data: GroupData) -> Result<WireMessage> {
        self.propose(device, Change::SetGroupData(data))
    }

    fn propose(&mut self, device: &Device, change: Change) -> Result<WireMessage> {
        if self.has_pending_change() {
            return Err(ConversationError::ChangePending);
        }
        let message = self.commit(device, &change)?;
        self.pending = Some(change);
        Ok(message)
    }

    fn leaf_indices(&self, devices: &[DeviceId]) -> Vec<LeafNodeIndex> {
        self.group
            .members()
            .filter(|member| {
                verified_credential(&member.credential, &member.signature_key)
                    .is_ok_and(|credential| devices.contains(&credential.device))
            })
            .map(|member| member.index)
            .collect()
    }

    fn commit(&mut self, device: &Device, change: &Change) -> Result<WireMessage> {
        if !self.group.is_active() {
            return Err(ConversationError::NotAMember);
        }
        let epoch = self.epoch();
        let recipients: Vec<DeviceId> = match change {
            Change::Add(joining) => joining.iter().map(|(_, device)| *device).collect(),
            _ => Vec::new(),
        };
        let removals = match change {
            Change::RemoveDevices(devices) => self.leaf_indices(devices),
            _ => Vec::new(),
        };
        let builder = self.group.commit_builder();
        let builder = match change {
            Change::Add(joining) => {
                builder.propose_adds(joining.iter().map(|(key_package, _)| key_package.clone()))
            }
            Change::RemoveDevices(_) => builder.propose_removals(removals),
            Change::SelfUpdate => builder.force_self_update(true),
            Change::SetGroupData(data) => builder
                .propose_group_context_extensions(group_extensions(data)?)
                .map_err(|_| ConversationError::BadGroupData)?,
        };
        let bundle = builder
            .load_psks(device.provider.storage())
            .map_err(mls("load psks"))?
            .build(
                device.provider.rand(),
                device.provider.crypto(),
                &device.key,
                |_| true,
            )
            .map_err(mls("build commit"))?
            .stage_commit(&device.provider)
            .map_err(mls("stage commit"))?;
        let (commit, welcome, _) = bundle.into_messages();
        let welcome = match welcome {
            Some(welcome) => Some(WelcomeBundle {
                recipients,
                welcome: to_bytes(&welcome)?,
            }),
            None => None,
        };
        Ok(WireMessage::Commit {
            group: self.id(),
            epoch,
            message: to_bytes(&commit)?,
            welcome,
        })
    }

    /// The relay accepted this device's pending commit: the conversation moves to the next epoch.
    pub fn commit_accepted(&mut self, device: &Device) -> Result<()> {
        if !self.has_pending_change() {
            return Err(ConversationError::NothingPending);
        }
        self.pending = None;
        self.group
            .merge_pending_commit(&device.provider)
            .map_err(mls("merge commit"))
    }

    /// The relay refused the pending commit because another member's commit won the epoch.
    /// The pending commit is discarded, `missed` (the commits the relay reported, in order) are
    /// applied, and the same change is made again on the new epoch. Returns what the missed
    /// messages meant, and the new commit to send, if the change still has anything to do. After
    /// a restart the change itself is no longer known: the commit is discarded and the caller
    /// makes the change again.
    pub fn epoch_moved(
        &mut self,
        device: &Device,
        missed: &[WireMessage],
    ) -> Result<(Vec<Received>, Option<WireMessage>)> {
        if !self.has_pending_change() {
            return Err(ConversationError::NothingPending);
        }
        let change = self.pending.take();
        self.group
            .clear_pending_commit(device.provider.storage())
            .map_err(mls("discard pending commit"))?;
        let mut received = Vec::with_capacity(missed.len());
        for message in missed {
            received.push(self.receive(device, message)?);
        }
        if !self.group.is_active() {
            return Ok((received, None));
        }
        let retry = match change {
            None => None,
            Some(Change::RemoveDevices(devices)) if self.leaf_indices(&devices).is_empty() => None,
            Some(change) => Some(self.propose(device, change)?),
        };
        Ok((received, retry))
    }

    /// Decrypts and applies one message the relay delivered for this conversation.
    pub fn receive(&mut self, device: &Device, message: &WireMessage) -> Result<Received> {
        let (group, bytes) = match message {
            WireMessage::Application { group, message, .. }
            | WireMessage::Commit { group, message, .. }
            | WireMessage::Proposal { group, message, .. } => (group, message),
            _ => return Err(ConversationError::Malformed),
        };
        if *group != self.id() {
            return Err(ConversationError::WrongConversation);
        }
        let protocol_message = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(|_| ConversationError::Malformed)?
            .try_into_protocol_message()
            .map_err(|_| ConversationError::Malformed)?;
        if protocol_message.group_id().as_slice() != group.as_bytes() {
            return Err(ConversationError::WrongConversation);
        }
        let processed = self
            .group
            .process_message(&device.provider, protocol_message)
            .map_err(classify_process_error)?;
        let sender_key = match processed.sender() {
            openmls::prelude::Sender::Member(index) => self
                .group
                .members()
                .find(|member| member.index == *index)
                .map(|member| member.signature_key),
            _ => None,
        };
        let sender_credential = processed.credential().clone();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(application) => {
                let sender_key = sender_key.ok_or(ConversationError::Undecryptable)?;
                let sender = verified_credential(&sender_credential, &sender_key)?;
                let padded = Zeroizing::new(application.into_bytes());
                let content =
                    AppContent::from_padded(&padded).map_err(|_| ConversationError::Malformed)?;
                if let Some(id) = content_id(&content) {
                    if !self.remember(id) {
                        return Ok(Received::Duplicate { id });
                    }
                }
                Ok(Received::Message { sender, content })
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let mut added = Vec::new();
                for proposal in staged.add_proposals() {
                    added.push(verified_leaf(
                        proposal.add_proposal().key_package().leaf_node(),
                    )?);
                }
                // A committer's new leaf, and any updated leaf, must still be vouched for, with
                // the leaf's signature key as the credential's device key.
                if let Some(leaf) = staged.update_path_leaf_node() {
                    verified_leaf(leaf)?;
                }
                for proposal in staged.update_proposals() {
                    verified_leaf(proposal.update_proposal().leaf_node())?;
                }
                for credential in staged.credentials_to_verify() {
                    let basic = BasicCredential::try_from(credential.clone())
                        .map_err(|_| IdentityError::MalformedCredential)?;
                    DeviceCredential::decode_verified(basic.identity())?;
                }
                let group_data = read_group_data(staged.group_context().extensions())?;
                let mut removed = Vec::new();
                for proposal in staged.remove_proposals() {
                    let index = proposal.remove_proposal().removed();
                    if let Some(member) = self.group.members().find(|m| m.index == index) {
                        removed.push(verified_credential(
                            &member.credential,
                            &member.signature_key,
                        )?);
                    }
                }
                let removed_self = staged.self_removed();
                self.group
                    .merge_staged_commit(&device.provider, *staged)
                    .map_err(mls("merge commit"))?;
                Ok(Received::Changed(GroupChange {
                    epoch: self.epoch(),
                    added,
                    removed,
                    group_data,
                    removed_self,
                }))
            }
            // Ward sends no standalone proposals; a member who does is ignored, not obeyed.
            ProcessedMessageContent::ProposalMessage(_)
            | ProcessedMessageContent::ExternalJoinProposalMessage(_) => {
                Err(ConversationError::Malformed)
            }
            ProcessedMessageContent::OwnPendingCommit
            | ProcessedMessageContent::OwnPrivateMessage => Err(ConversationError::OwnMessage),
        }
    }

    /// Records a client message id; false when it was already seen.
    fn remember(&mut self, id: ClientMessageId) -> bool {
        if !self.seen_set.insert(id) {
            return false;
        }
        self.seen.push_back(id);
        if self.seen.len() > REMEMBERED_IDS {
            if let Some(oldest) = self.seen.pop_front() {
                self.seen_set.remove(&oldest);
            }
        }
        true
    }
}

/// The id that makes delivery of this content idempotent; receipts have none of their own.
fn content_id(content: &AppContent) -> Option<ClientMessageId> {
    match content {
        AppContent::Text { id, .. }
        | AppContent::Attachment { id, .. }
        | AppContent::Edit { id, .. }
        | AppContent::Delete { id, .. } => Some(*id),
        AppContent::Receipt { .. } => None,
    }
}

fn to_bytes(message: &MlsMessageOut) -> Result<Vec<u8>> {
    message.to_bytes().map_err(mls("encode message"))
}

fn classify_process_error<E: std::fmt::Debug>(
    error: openmls::prelude::ProcessMessageError<E>,
) -> ConversationError {
    use openmls::{
        framing::errors::MessageDecryptionError,
        framing::errors::SecretTreeError,
        prelude::{ProcessMessageError, ValidationError},
    };
    match error {
        ProcessMessageError::ValidationError(ValidationError::UnableToDecrypt(
            MessageDecryptionError::SecretTreeError(SecretTreeError::SecretReuseError),
        )) => ConversationError::Replayed,
        ProcessMessageError::ValidationError(ValidationError::UnableToDecrypt(
            MessageDecryptionError::SecretTreeError(SecretTreeError::TooDistantInThePast),
        ))
        | ProcessMessageError::ValidationError(
            ValidationError::WrongEpoch | ValidationError::NoPastEpochData,
        ) => ConversationError::WrongEpoch,
        ProcessMessageError::ValidationError(_) => ConversationError::Undecryptable,
        ProcessMessageError::InvalidCommit(_) => ConversationError::Mls {
            operation: "apply commit",
        },
        ProcessMessageError::GroupStateError(_) => ConversationError::NotAMember,
        _ => ConversationError::Mls {
            operation: "process message",
        },
    }
}

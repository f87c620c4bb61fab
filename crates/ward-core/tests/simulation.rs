//! A multi-party simulation after libsignal's interaction fuzzer: 3 to 50 members, random adds,
//! removes, updates and messages, commits that race for an epoch, and a delivery that reorders
//! messages within an epoch, drops some and duplicates others.
//!
//! Every message must be shown exactly once by every member that receives it, a duplicate must be
//! refused with a typed error, nothing may panic, and after each commit all members must agree on
//! the epoch authenticator. Runs are seeded, so a failure names the seed that reproduces it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::{device, group_id, team, welcome_of};
use ward_core::conversation::{Conversation, ConversationError, Device, Received};
use ward_proto::{AppContent, ClientMessageId, WireMessage};

/// xorshift64*: small, seeded and good enough to choose actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct Member {
    device: Device,
    conversation: Conversation,
    /// How far into the relay's log this member has read.
    cursor: usize,
    /// Client message id → how many times it was shown.
    shown: HashMap<ClientMessageId, u32>,
}

struct Simulation {
    rng: Rng,
    seed: u64,
    members: Vec<Member>,
    /// The relay's log: commits in the order accepted, messages in delivery order.
    log: Vec<WireMessage>,
    /// Messages sent in this epoch and not yet handed to the relay.
    unsent: Vec<(WireMessage, ClientMessageId, u8)>,
    /// Every message put in the log: its id, its sender's tag and the tags of the members in the
    /// group when it was sent.
    delivered: Vec<(ClientMessageId, u8, Vec<u8>)>,
    next_tag: u8,
    next_message: u64,
    stats: Stats,
}

#[derive(Default, Debug)]
struct Stats {
    messages: usize,
    dropped: usize,
    duplicated: usize,
    duplicates_refused: usize,
    adds: usize,
    removes: usize,
    updates: usize,
    races: usize,
    max_members: usize,
}

fn tag_of(member: &Member) -> u8 {
    member.device.credential().device.0[0]
}

impl Simulation {
    fn new(seed: u64, start: usize) -> Self {
        let mut next_tag = 1;
        let mut devices = Vec::new();
        for _ in 0..start {
            devices.push(device(next_tag));
            next_tag += 1;
        }
        let creator = devices.remove(0);
        let others: Vec<&Device> = devices.iter().collect();
        let (created, joined) =
            common::conversation_of(&creator, &others, &team("sim", None), group_id(1));
        let mut members = vec![Member {
            device: creator,
            conversation: created,
            cursor: 0,
            shown: HashMap::new(),
        }];
        for (device, conversation) in devices.into_iter().zip(joined) {
            members.push(Member {
                device,
                conversation,
                cursor: 0,
                shown: HashMap::new(),
            });
        }
        Self {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            seed,
            members,
            log: Vec::new(),
            unsent: Vec::new(),
            delivered: Vec::new(),
            next_tag,
            next_message: 0,
            stats: Stats::default(),
        }
    }

    fn send(&mut self) {
        let sender = self.rng.below(self.members.len());
        self.next_message += 1;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next_message.to_be_bytes());
        id[8..].copy_from_slice(&self.seed.to_be_bytes());
        let id = ClientMessageId(id);
        let member = &mut self.members[sender];
        let message = member
            .conversation
            .send(
                &member.device,
                &AppContent::Text {
                    id,
                    body: format!("message {}", self.next_message),
                },
            )
            .unwrap();
        let sender_tag = tag_of(member);
        self.unsent.push((message, id, sender_tag));
        self.stats.messages += 1;
    }

    /// Hands this epoch's messages to the relay: shuffled, some dropped, some duplicated.
    fn flush(&mut self) {
        let mut batch = std::mem::take(&mut self.unsent);
        for i in (1..batch.len()).rev() {
            let j = self.rng.below(i + 1);
            batch.swap(i, j);
        }
        let present: Vec<u8> = self.members.iter().map(tag_of).collect();
        for (message, id, sender) in batch {
            if self.rng.chance(5) {
                self.stats.dropped += 1;
                continue;
            }
            let copies = if self.rng.chance(5) { 2 } else { 1 };
            self.stats.duplicated += copies - 1;
            for _ in 0..copies {
                self.log.push(message.clone());
            }
            self.delivered.push((id, sender, present.clone()));
        }
    }

    /// Every member reads the log to its end.
    fn deliver_all(&mut self) {
        for member in &mut self.members {
            // A removed member stops at the commit that removed it.
            while member.cursor < self.log.len() && member.conversation.is_active() {
                read(member, &self.log[member.cursor], self.seed, &mut self.stats);
            }
        }
        self.members
            .retain(|member| member.conversation.is_active());
    }

    fn check_agreement(&self) {
        let first = self.members[0].conversation.epoch_authenticator();
        for member in &self.members {
            assert_eq!(
                member.conversation.epoch_authenticator(),
                first,
                "seed {}: member {} forked",
                self.seed,
                tag_of(member)
            );
            assert_eq!(
                member.conversation.members().unwrap().len(),
                self.members.len(),
                "seed {}",
                self.seed
            );
        }
    }

    /// Builds one random change from member `author`; `None` when it has nothing to do.
    fn change(&mut self, author: usize, max: usize) -> Option<(WireMessage, Vec<Device>)> {
        let len = self.members.len();
        let choice = self.rng.below(10);
        if choice < 4 && len < max {
            let count = 1 + self.rng.below(5.min(max - len));
            let joiners: Vec<Device> = (0..count)
                .map(|_| {
                    self.next_tag += 1;
                    device(self.next_tag)
                })
                .collect();
            let key_packages: Vec<Vec<u8>> = joiners
                .iter()
                .map(|d| d.key_packages(1).unwrap().remove(0))
                .collect();
            let member = &mut self.members[author];
            let commit = member
                .conversation
                .add_members(&member.device, &key_packages)
                .unwrap();
            self.stats.adds += count;
            Some((commit, joiners))
        } else if choice < 7 && len > 3 {
            let mut victim = self.rng.below(len);
            if victim == author {
                victim = (victim + 1) % len;
            }
            let target = self.members[victim].device.credential().device;
            let member = &mut self.members[author];
            let commit = member
                .conversation
                .remove_devices(&member.device, &[target])
                .unwrap();
            self.stats.removes += 1;
            Some((commit, Vec::new()))
        } else {
            let member = &mut self.members[author];
            let commit = member.conversation.self_update(&member.device).unwrap();
            self.stats.updates += 1;
            Some((commit, Vec::new()))
        }
    }

    fn accept(&mut self, author: usize, commit: WireMessage, joiners: Vec<Device>) {
        let member = &mut self.members[author];
        // The author reads what came before its commit in the log, then applies its commit.
        while member.cursor < self.log.len() {
            read(member, &self.log[member.cursor], self.seed, &mut self.stats);
        }
        member.conversation.commit_accepted(&member.device).unwrap();
        self.log.push(commit.clone());
        member.cursor = self.log.len();
        if !joiners.is_empty() {
            let welcome = welcome_of(&commit);
            for device in joiners {
                let conversation = device.join(&welcome).unwrap();
                self.members.push(Member {
                    device,
                    conversation,
                    cursor: self.log.len(),
                    shown: HashMap::new(),
                });
            }
        }
    }

    fn commit_round(&mut self, max: usize) {
        self.flush();
        let author = self.rng.below(self.members.len());
        let rival = if self.members.len() > 3 && self.rng.chance(30) {
            Some((author + 1 + self.rng.below(self.members.len() - 1)) % self.members.len())
        } else {
            None
        };
        let Some((commit, joiners)) = self.change(author, max) else {
            return;
        };
        let lost = rival.and_then(|rival| self.change(rival, max).map(|c| (rival, c)));
        self.accept(author, commit.clone(), joiners);

        if let Some((rival, (_refused, rival_joiners))) = lost {
            self.stats.races += 1;
            // The relay answers "epoch moved": the rival reads what it missed, then retries.
            let member = &mut self.members[rival];
            while member.cursor + 1 < self.log.len() {
                read(member, &self.log[member.cursor], self.seed, &mut self.stats);
            }
            let (_, retry) = member
                .conversation
                .epoch_moved(&member.device, std::slice::from_ref(&commit))
                .unwrap();
            member.cursor = self.log.len();
            let still_member = member.conversation.is_active();
            if let (Some(retry), true) = (retry, still_member) {
                self.accept(rival, retry, rival_joiners);
            }
        }
        self.deliver_all();
        self.check_agreement();
        self.stats.max_members = self.stats.max_members.max(self.members.len());
    }

    fn run(mut self, steps: usize, max: usize) -> Stats {
        for _ in 0..steps {
            if self.rng.chance(70) {
                self.send();
            } else {
                self.commit_round(max);
            }
        }
        self.flush();
        self.deliver_all();
        self.check_agreement();
        self.check_exactly_once();
        self.stats
    }

    /// Every message in the log was shown exactly once to every member that was in the group
    /// when it was sent and still is, except its sender; and never to anyone else.
    fn check_exactly_once(&self) {
        for member in &self.members {
            let tag = tag_of(member);
            for (id, sender, present) in &self.delivered {
                let expected = u32::from(present.contains(&tag) && *sender != tag);
                let shown = member.shown.get(id).copied().unwrap_or(0);
                assert_eq!(
                    shown, expected,
                    "seed {}: {id:?} shown {shown} times to member {tag}",
                    self.seed
                );
            }
        }
    }
}

/// One member reads the next entry of the log.
fn read(member: &mut Member, message: &WireMessage, seed: u64, stats: &mut Stats) {
    member.cursor += 1;
    match member.conversation.receive(&member.device, message) {
        Ok(Received::Message { content, .. }) => {
            let AppContent::Text { id, .. } = content else {
                panic!("seed {seed}: unexpected content");
            };
            *member.shown.entry(id).or_default() += 1;
        }
        Ok(Received::Changed(_)) => {}
        Ok(Received::Duplicate { id }) => {
            panic!("seed {seed}: a copy of {id:?} got past MLS")
        }
        Err(ConversationError::Replayed) => stats.duplicates_refused += 1,
        // The member's own messages come back through the log too.
        Err(ConversationError::OwnMessage) => {}
        Err(error) => panic!("seed {seed}: member {}: {error}", tag_of(member)),
    }
}

#[test]
fn small_groups_survive_random_interleavings() {
    for seed in 1..=4 {
        let stats = Simulation::new(seed, 3).run(120, 8);
        eprintln!("seed {seed}: {stats:?}");
        assert!(
            stats.messages > 40 && stats.races > 0,
            "seed {seed}: {stats:?}"
        );
    }
}

#[test]
fn a_group_grows_to_fifty_members_and_stays_consistent() {
    let stats = Simulation::new(99, 3).run(220, 50);
    eprintln!("seed 99: {stats:?}");
    assert!(stats.max_members >= 30, "{stats:?}");
    assert!(
        stats.duplicates_refused > 0 && stats.dropped > 0,
        "{stats:?}"
    );
}

//! `shm-layout/ipcring.h` describes exactly the bytes of `ipcring::__private::layout`: every struct size,
//! every field offset and size, and every constant. A C program compiled against the header
//! prints them; each is compared with the Rust value, and every mismatch is listed. The placement
//! numbers that `LAYOUT.md` quotes are checked against [`Geometry::new`] as well.

mod c_build;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::mem::{offset_of, size_of, size_of_val};
use std::process::Command;
use std::sync::OnceLock;

use ipcring::__private::layout::SubscriberRecord;
use ipcring::__private::layout::{
    Block, EndpointRecord, EndpointTable, Geometry, Header, MpmcSlotHeader, PositionBlock, RingKind, RoleRecord,
    RolesBlock, SlotHeader, StatsBlock, WaitBlock, WaitStrategy, ABANDONED_BIT, BLOCK_SIZE, COMPAT_ACTIVITY_TIME,
    COMPAT_LATE_WAKES, COMPAT_SLEEPER_CLAIMS, ENDPOINT_CONSUMER, ENDPOINT_PRODUCER, HEADER_SIZE, INCOMPAT_OFD_LOCKS,
    INCOMPAT_SUBSCRIBER_TABLE, KNOWN_INCOMPATIBLE_FEATURES, LAYOUT_VERSION, LOCK_MAP_OFFSET, LOCK_MAP_SIZE, LOCK_OPEN,
    LOCK_RECORDS, LOCK_SUBSCRIBERS, LOCK_WAITERS, MAGIC, MAX_ENDPOINTS, MAX_LOCK_RECORDS, MAX_SEGMENT_SIZE,
    MAX_SLOT_COUNT, MAX_SLOT_SIZE, MAX_SUBSCRIBERS, MPMC_SLOT_HEADER_SIZE, MUTEX_ABI_OFFSET, MUTEX_OFFSET, MUTEX_ROOM,
    OLDEST_READABLE_VERSION, OVERFLOW_BLOCK, OVERFLOW_OVERWRITE, SLOT_ALIGN, SLOT_HEADER_SIZE,
};

/// One field of a struct, as Rust lays it out.
struct Field {
    name: &'static str,
    offset: u64,
    size: u64,
}

/// One `#[repr(C)]` struct and the name of its C twin.
struct Struct {
    c_name: &'static str,
    size: u64,
    fields: Vec<Field>,
}

/// Lists a struct's fields in declaration order; `field_lists_cover_every_byte_of_every_struct`
/// proves that no field is left out.
macro_rules! layout_of {
    ($rust:ty, $c_name:literal, [$($field:ident),+ $(,)?]) => {{
        let value = <$rust as bytemuck::Zeroable>::zeroed();
        Struct {
            c_name: $c_name,
            size: size_of::<$rust>() as u64,
            fields: vec![$(Field {
                name: stringify!($field),
                offset: offset_of!($rust, $field) as u64,
                size: size_of_val(&value.$field) as u64,
            }),+],
        }
    }};
}

fn structs() -> Vec<Struct> {
    vec![
        layout_of!(
            Header,
            "ipcring_header",
            [
                magic,
                layout_version,
                header_size,
                ring_kind,
                wait_strategy,
                incompatible_features,
                compatible_features,
                total_size,
                slot_count,
                slot_size,
                slot_stride,
                slot_payload_offset,
                creator_pid,
                creator_uid,
                overflow,
                created_at_ns,
                producer_offset,
                consumer_offset,
                not_empty_offset,
                not_full_offset,
                roles_offset,
                producer_stats_offset,
                consumer_stats_offset,
                slots_offset,
                lock_map_offset,
                subscribers_offset,
                subscriber_count,
                waiter_count,
                waiters_offset,
                reserved,
            ]
        ),
        layout_of!(PositionBlock, "ipcring_position_block", [position, reserved]),
        layout_of!(WaitBlock, "ipcring_wait_block", [futex, waiters, reserved0, semaphore, reserved1]),
        layout_of!(RoleRecord, "ipcring_role_record", [claim, attach_count, last_attach_ns, reaped]),
        layout_of!(RolesBlock, "ipcring_roles_block", [producer, consumer, reserved]),
        layout_of!(
            StatsBlock,
            "ipcring_stats_block",
            [
                waits,
                futex_waits,
                futex_wakes,
                semaphore_waits,
                abandoned,
                redelivered,
                attaches,
                last_active_ns,
                late_wakes,
                reserved
            ]
        ),
        layout_of!(SlotHeader, "ipcring_slot_header", [length, stamp]),
        layout_of!(MpmcSlotHeader, "ipcring_mpmc_slot_header", [sequence, length, reserved]),
        layout_of!(
            EndpointRecord,
            "ipcring_endpoint_record",
            [claim, role, reserved0, pending_start, pending_count, attached_ns, sleeping, reserved]
        ),
        layout_of!(
            SubscriberRecord,
            "ipcring_subscriber_record",
            [claim, cursor, sleeping, lagged, received, joined_at, attached_ns, reserved]
        ),
        // A type alias (an array) in Rust, a struct with one array field in C.
        Struct {
            c_name: "ipcring_endpoint_table",
            size: size_of::<EndpointTable>() as u64,
            fields: vec![Field { name: "records", offset: 0, size: size_of::<EndpointTable>() as u64 }],
        },
    ]
}

/// The C macros (or expressions) and the Rust values they must equal.
fn constants() -> Vec<(&'static str, u64)> {
    let role_record_size = size_of::<RoleRecord>() as u64;
    let claim_pid = ipcring::__private::process::claim_pid;
    let wait_block = <WaitBlock as bytemuck::Zeroable>::zeroed();
    vec![
        ("IPCRING_MAGIC", MAGIC),
        ("IPCRING_MAX_POSITION", ipcring::__private::ring::spsc::MAX_POSITION),
        ("IPCRING_LAYOUT_VERSION", LAYOUT_VERSION.into()),
        ("IPCRING_OLDEST_READABLE_VERSION", OLDEST_READABLE_VERSION.into()),
        ("IPCRING_BLOCK_SIZE", BLOCK_SIZE),
        ("IPCRING_HEADER_SIZE", HEADER_SIZE),
        ("IPCRING_SLOT_HEADER_SIZE", SLOT_HEADER_SIZE.into()),
        ("IPCRING_SLOT_HEADER_SIZE", RingKind::Spsc.slot_header_size().into()),
        ("IPCRING_MPMC_SLOT_HEADER_SIZE", MPMC_SLOT_HEADER_SIZE.into()),
        ("IPCRING_MPMC_SLOT_HEADER_SIZE", RingKind::Mpmc.slot_header_size().into()),
        ("IPCRING_SLOT_ALIGN", SLOT_ALIGN.into()),
        ("IPCRING_MAX_SLOT_SIZE", MAX_SLOT_SIZE.into()),
        ("IPCRING_MAX_SLOT_COUNT", MAX_SLOT_COUNT),
        ("IPCRING_MAX_SEGMENT_SIZE", MAX_SEGMENT_SIZE),
        ("IPCRING_KNOWN_INCOMPATIBLE_FEATURES", KNOWN_INCOMPATIBLE_FEATURES.into()),
        ("IPCRING_INCOMPAT_OFD_LOCKS", INCOMPAT_OFD_LOCKS.into()),
        ("IPCRING_INCOMPAT_SUBSCRIBER_TABLE", INCOMPAT_SUBSCRIBER_TABLE.into()),
        ("IPCRING_RING_KIND_BROADCAST", RingKind::Broadcast.to_raw().into()),
        ("IPCRING_MPMC_SLOT_HEADER_SIZE", RingKind::Broadcast.slot_header_size().into()),
        ("IPCRING_OVERFLOW_BLOCK", OVERFLOW_BLOCK.into()),
        ("IPCRING_OVERFLOW_OVERWRITE", OVERFLOW_OVERWRITE.into()),
        ("IPCRING_MAX_SUBSCRIBERS", MAX_SUBSCRIBERS.into()),
        ("IPCRING_CURSOR_PROVISIONAL", ipcring::__private::ring::broadcast::PROVISIONAL),
        ("IPCRING_SUBSCRIBER_RECORD_SIZE", size_of::<SubscriberRecord>() as u64),
        ("IPCRING_BLOCK_SIZE", Block::Roles.size(RingKind::Broadcast)),
        // The lock map: where creators put it and the byte of every lock in it.
        ("IPCRING_LOCK_MAP_OFFSET", LOCK_MAP_OFFSET),
        ("IPCRING_LOCK_MAP_SIZE", LOCK_MAP_SIZE),
        ("IPCRING_LOCK_OPEN", LOCK_OPEN),
        ("IPCRING_LOCK_RECORDS", LOCK_RECORDS),
        ("IPCRING_MAX_LOCK_RECORDS", MAX_LOCK_RECORDS as u64),
        ("IPCRING_LOCK_SUBSCRIBERS", LOCK_SUBSCRIBERS),
        ("IPCRING_LOCK_WAITERS", LOCK_WAITERS),
        ("IPCRING_COMPAT_ACTIVITY_TIME", COMPAT_ACTIVITY_TIME.into()),
        ("IPCRING_COMPAT_SLEEPER_CLAIMS", COMPAT_SLEEPER_CLAIMS.into()),
        ("IPCRING_COMPAT_LATE_WAKES", COMPAT_LATE_WAKES.into()),
        ("IPCRING_BLOCK_COUNT", Block::ALL.len() as u64),
        ("IPCRING_RING_KIND_SPSC", RingKind::Spsc.to_raw().into()),
        ("IPCRING_RING_KIND_MPMC", RingKind::Mpmc.to_raw().into()),
        ("IPCRING_WAIT_FUTEX", WaitStrategy::Futex.to_raw().into()),
        ("IPCRING_WAIT_SPIN", WaitStrategy::Spin.to_raw().into()),
        ("IPCRING_WAIT_SEMAPHORE", WaitStrategy::Semaphore.to_raw().into()),
        ("IPCRING_WAIT_MUTEX", WaitStrategy::Mutex.to_raw().into()),
        ("IPCRING_WAIT_MEMBARRIER", WaitStrategy::Membarrier.to_raw().into()),
        ("IPCRING_MUTEX_ABI_OFFSET", MUTEX_ABI_OFFSET),
        ("IPCRING_MUTEX_OFFSET", MUTEX_OFFSET),
        ("IPCRING_MUTEX_ROOM", MUTEX_ROOM),
        // The semaphore field holds the platform's sem_t exactly (C: <semaphore.h>, Rust: libc).
        ("IPCRING_SEMAPHORE_SIZE", size_of_val(&wait_block.semaphore) as u64),
        ("sizeof(sem_t)", size_of::<libc::sem_t>() as u64),
        ("IPCRING_ABANDONED_BIT", ABANDONED_BIT),
        ("IPCRING_MAX_ENDPOINTS", MAX_ENDPOINTS as u64),
        ("IPCRING_ENDPOINT_RECORD_SIZE", size_of::<EndpointRecord>() as u64),
        ("IPCRING_ENDPOINT_TABLE_SIZE", size_of::<EndpointTable>() as u64),
        ("IPCRING_ENDPOINT_TABLE_SIZE", Block::Roles.size(RingKind::Mpmc)),
        ("IPCRING_BLOCK_SIZE", Block::Roles.size(RingKind::Spsc)),
        ("IPCRING_ENDPOINT_PRODUCER", ENDPOINT_PRODUCER.into()),
        ("IPCRING_ENDPOINT_CONSUMER", ENDPOINT_CONSUMER.into()),
        (
            "sizeof(((struct ipcring_endpoint_table *)0)->records) / sizeof(((struct ipcring_endpoint_table *)0)->records[0])",
            MAX_ENDPOINTS as u64,
        ),
        ("IPCRING_ROLE_RECORD_SIZE", role_record_size),
        ("IPCRING_ROLE_PRODUCER", offset_of!(RolesBlock, producer) as u64 / role_record_size),
        ("IPCRING_ROLE_CONSUMER", offset_of!(RolesBlock, consumer) as u64 / role_record_size),
        // The claim word: pid in the low half, start time in the high half.
        ("IPCRING_CLAIM(4000000001u, 7u)", 7 << 32 | 4_000_000_001),
        ("IPCRING_CLAIM_PID(0x0000000700000009ULL)", claim_pid(0x0000_0007_0000_0009).into()),
        ("IPCRING_CLAIM_START_TIME(0x0000000700000009ULL)", 7),
    ]
}

/// Every quantity the C program prints, by name (`sizeof:S`, `offsetof:S.f`, `fieldsize:S.f`, or
/// the constant expression), with the C expression that computes it and the Rust value.
fn expectations() -> Vec<(String, String, u64)> {
    let mut all = Vec::new();
    for layout in structs() {
        let c_type = format!("struct {}", layout.c_name);
        all.push((format!("sizeof:{}", layout.c_name), format!("sizeof({c_type})"), layout.size));
        for field in &layout.fields {
            let path = format!("{}.{}", layout.c_name, field.name);
            all.push((format!("offsetof:{path}"), format!("offsetof({c_type}, {})", field.name), field.offset));
            all.push((format!("fieldsize:{path}"), format!("sizeof((({c_type} *)0)->{})", field.name), field.size));
        }
    }
    for (expression, value) in constants() {
        all.push((expression.replace(' ', ""), expression.to_string(), value));
    }
    all
}

/// Compiles and runs the printing program once per test process; returns `name -> value`.
fn c_values() -> &'static BTreeMap<String, u64> {
    static VALUES: OnceLock<BTreeMap<String, u64>> = OnceLock::new();
    VALUES.get_or_init(|| {
        // <semaphore.h> first: sizeof(sem_t) is printed, and ipcring.h checks it too. <fcntl.h>
        // with _GNU_SOURCE first: the lock helpers are compiled (under -Werror) as well.
        let mut source = String::from(
            "#define _GNU_SOURCE\n#include <fcntl.h>\n#include <pthread.h>\n#include <semaphore.h>\n#include <stddef.h>\n#include <stdio.h>\n\
             #include \"ipcring.h\"\n\nint main(void) {\n",
        );
        for (name, expression, _) in expectations() {
            writeln!(source, "    printf(\"%s %llu\\n\", \"{name}\", (unsigned long long)({expression}));").unwrap();
        }
        source.push_str("    return 0;\n}\n");
        let directory = c_build::scratch_dir("layout");
        let source_path = directory.join("print_layout.c");
        std::fs::write(&source_path, source).unwrap();
        let program = directory.join("print_layout");
        c_build::compile(&source_path, &program);
        let output = Command::new(&program).output().expect("running the layout printer");
        assert!(output.status.success(), "the layout printer failed: {}", output.status);
        String::from_utf8(output.stdout)
            .expect("the layout printer prints ASCII")
            .lines()
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').expect("lines are `name value`");
                (name.to_string(), value.parse().expect("values are decimal"))
            })
            .collect()
    })
}

/// The expectations whose names pass `select` and whose C value differs from the Rust one.
fn mismatches(select: impl Fn(&str) -> bool) -> Vec<String> {
    let values = c_values();
    expectations()
        .into_iter()
        .filter(|(name, _, _)| select(name))
        .filter_map(|(name, expression, rust)| match values.get(&name) {
            Some(&c) if c == rust => None,
            Some(&c) => Some(format!("{expression}: C {c}, Rust {rust}")),
            None => Some(format!("{expression}: not printed by the C program")),
        })
        .collect()
}

fn is_struct_quantity(name: &str) -> bool {
    ["sizeof:", "offsetof:", "fieldsize:"].iter().any(|prefix| name.starts_with(prefix))
}

#[test]
fn every_struct_size_field_offset_and_field_size_in_c_matches_rust() {
    let wrong = mismatches(is_struct_quantity);
    assert!(wrong.is_empty(), "ipcring.h disagrees with src/layout.rs:\n  {}", wrong.join("\n  "));
}

#[test]
fn every_constant_in_c_matches_rust() {
    let wrong = mismatches(|name| !is_struct_quantity(name));
    assert!(
        wrong.is_empty(),
        "ipcring.h constants disagree with ipcring::__private::layout:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn field_lists_cover_every_byte_of_every_struct() {
    // Fields are listed by hand; if they tile each struct without gap or overlap, a field added
    // to a Rust struct (out of its reserved space) cannot go unchecked.
    let mut wrong = Vec::new();
    for layout in structs() {
        let mut end = 0;
        for field in &layout.fields {
            if field.offset != end {
                wrong.push(format!("{}.{} starts at {}, expected {end}", layout.c_name, field.name, field.offset));
            }
            end = field.offset + field.size;
        }
        if end != layout.size {
            wrong.push(format!("{}: fields end at {end}, the struct at {}", layout.c_name, layout.size));
        }
    }
    assert!(wrong.is_empty(), "the field lists in this test are incomplete:\n  {}", wrong.join("\n  "));
}

#[test]
fn magic_is_ipcring_nul_read_little_endian() {
    assert_eq!(MAGIC, u64::from_le_bytes(*b"IPCRING\0"));
    assert_eq!(MAGIC, 0x0047_4E49_5243_5049);
}

#[test]
fn placement_quoted_in_layout_md_is_what_the_creator_plans() {
    // LAYOUT.md section 5: the seven blocks from 256, slots after them; the MPMC endpoint table
    // (4096 bytes) at roles_offset pushes the two stats blocks and the slots back.
    let cases = [
        (RingKind::Spsc, [256, 384, 512, 640, 768, 896, 1024], 1152, 128, 2176),
        (RingKind::Mpmc, [256, 384, 512, 640, 768, 4864, 4992], 5120, 128, 6144),
    ];
    for (kind, blocks, slots_offset, stride, total_size) in cases {
        let geometry = Geometry::new(kind, WaitStrategy::Futex, 8, 100).unwrap();
        let offsets: Vec<u64> = Block::ALL.iter().map(|block| geometry.block_offset(*block)).collect();
        assert_eq!(offsets, blocks, "{kind} block offsets");
        assert_eq!(geometry.slots_offset, slots_offset, "{kind} slots_offset");
        assert_eq!(geometry.slot_payload_offset, kind.slot_header_size(), "{kind} slot_payload_offset");
        assert_eq!(geometry.slot_stride, stride, "{kind} slot_stride");
        assert_eq!(geometry.total_size, total_size, "{kind} total_size");
    }
}

#[test]
fn the_semaphore_field_holds_a_sem_t() {
    let wait_block = <WaitBlock as bytemuck::Zeroable>::zeroed();
    assert_eq!(size_of::<libc::sem_t>(), size_of_val(&wait_block.semaphore));
    assert!(std::mem::align_of::<libc::sem_t>() <= 8);
    assert_eq!(offset_of!(WaitBlock, semaphore) % 8, 0);
}

//! Claiming a name: a key's record is made once and found again; a name belongs to the
//! first key that claimed it, whatever its case and whichever look-alike letters ask for
//! it; a key keeps its first name; names are bounded even when the caller forgot to check.

use tessera_store::{ClaimError, MAX_NAME_BYTES, NameError};

use crate::backend::{Backend, SPAWN, key, on_both_backends};

on_both_backends!(
    first_claim_makes_the_record,
    a_name_belongs_to_the_first_key,
    look_alike_names_are_one_name,
    a_key_keeps_its_first_name,
    names_are_bounded
);

async fn first_claim_makes_the_record(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(store.load(key(1)).await.unwrap(), None);

    let made = store.claim(key(1), "Ann", SPAWN).await.unwrap();
    assert!(made.created);
    assert_eq!(made.record.id, key(1).user());
    assert_eq!(made.record.key, key(1));
    assert_eq!(made.record.name, "Ann");
    assert_eq!(made.record.position, SPAWN);
    assert_eq!(made.record.time_played_ms, 0);
    assert!(made.record.last_seen_ms > 0);

    let again = store.claim(key(1), "Ann", SPAWN * 2.0).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.record, made.record, "claiming again changes nothing");
    assert_eq!(store.load(key(1)).await.unwrap(), Some(made.record));
    assert_eq!(store.load(key(2)).await.unwrap(), None);
}

async fn a_name_belongs_to_the_first_key(backend: Backend) {
    let store = backend.open().await;
    store.claim(key(1), "Ann", SPAWN).await.unwrap();
    for name in ["Ann", "ann", "ANN"] {
        match store.claim(key(2), name, SPAWN).await {
            Err(ClaimError::NameTaken { name: refused }) => assert_eq!(refused, name),
            other => panic!("{name} claimed by a second key: {other:?}"),
        }
    }
    assert_eq!(store.load(key(2)).await.unwrap(), None, "a refused claim leaves no record");
    // Unicode case too, not only ASCII.
    store.claim(key(3), "Émile", SPAWN).await.unwrap();
    assert!(matches!(store.claim(key(4), "éMILE", SPAWN).await, Err(ClaimError::NameTaken { .. })));
    let other = store.claim(key(2), "Anna", SPAWN).await.unwrap();
    assert!(other.created);
    assert_eq!(other.record.name, "Anna");
}

async fn look_alike_names_are_one_name(backend: Backend) {
    let store = backend.open().await;
    store.claim(key(1), "paypal", SPAWN).await.unwrap();
    store.claim(key(2), "Bob", SPAWN).await.unwrap();
    // With a Cyrillic а, in capitals, with a zero for an O.
    for (n, name) in [(3, "p\u{430}ypal"), (4, "PAYPAL"), (5, "B0B")] {
        match store.claim(key(n), name, SPAWN).await {
            Err(ClaimError::NameTaken { name: refused }) => assert_eq!(refused, name),
            other => panic!("{name} claimed beside its look-alike: {other:?}"),
        }
        assert_eq!(store.load(key(n)).await.unwrap(), None);
    }
    // "pay" all in Cyrillic, then in Latin; a lowercase l, then a capital I.
    store.claim(key(6), "\u{440}\u{430}\u{443}", SPAWN).await.unwrap();
    assert!(matches!(store.claim(key(7), "Pay", SPAWN).await, Err(ClaimError::NameTaken { .. })));
    store.claim(key(8), "llya", SPAWN).await.unwrap();
    assert!(matches!(store.claim(key(9), "Ilya", SPAWN).await, Err(ClaimError::NameTaken { .. })));
}

async fn a_key_keeps_its_first_name(backend: Backend) {
    let store = backend.open().await;
    store.claim(key(1), "Ann", SPAWN).await.unwrap();
    let renamed = store.claim(key(1), "Zed", SPAWN).await.unwrap();
    assert!(!renamed.created);
    assert_eq!(renamed.record.name, "Ann");
    // The name it asked for was not given to it, so it is still free.
    assert!(store.claim(key(2), "Zed", SPAWN).await.unwrap().created);
}

async fn names_are_bounded(backend: Backend) {
    let store = backend.open().await;
    let longest = "é".repeat(MAX_NAME_BYTES / 2);
    assert_eq!(longest.len(), MAX_NAME_BYTES);
    assert_eq!(store.claim(key(1), &longest, SPAWN).await.unwrap().record.name, longest);

    let too_long = format!("{longest}x");
    match store.claim(key(2), &too_long, SPAWN).await {
        Err(ClaimError::InvalidName(NameError::TooLong { len })) => assert_eq!(len, MAX_NAME_BYTES + 1),
        other => panic!("a name of {} bytes: {other:?}", too_long.len()),
    }
    assert!(matches!(store.claim(key(2), "", SPAWN).await, Err(ClaimError::InvalidName(NameError::Empty))));
    assert_eq!(store.load(key(2)).await.unwrap(), None);
}

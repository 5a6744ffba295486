//! Checks of profiles.rs: profile names, event entries, the caution, routing priority.

use super::*;

#[test]
fn system_default_profile_cannot_be_redefined() {
    let d = on_base("[[profile]]\nname = \"SystemDefaultComplianceProfile\"\nevents = []\n");
    assert_eq!(
        d,
        ["12:8: error: `SystemDefaultComplianceProfile` is built in and cannot be redefined"]
    );
    let d = on_base("[[profile]]\nname = \"systemdefaultcomplianceprofile\"\n");
    assert_eq!(
        d,
        ["12:8: error: `SystemDefaultComplianceProfile` is built in and cannot be redefined"]
    );
}

#[test]
fn profile_names_are_letters_and_digits() {
    let d = on_base("[[profile]]\nname = \"Ethical Wall\"\nevents = [{ event = \"es_IN\" }]\n");
    assert_eq!(d, ["12:8: error: invalid profile name \"Ethical Wall\": a profile name may contain only letters and digits, not ' '"]);
}

#[test]
fn duplicate_profile_names() {
    let d = on_base("[[profile]]\nname = \"P\"\nevents = [{ event = \"es_IN\" }]\n[[profile]]\nname = \"P\"\nevents = [{ event = \"es_OUT\" }]\n");
    assert_eq!(
        d,
        ["15:8: error: duplicate profile `P` (first defined on line 12)"]
    );
}

#[test]
fn profile_without_events_warns() {
    let d = on_base("[[profile]]\nname = \"Empty\"\n");
    assert_eq!(
        d,
        ["12:8: warning: profile `Empty` has no events: it matches nothing"]
    );
}

#[test]
fn unknown_event_name_suggests_the_nearest() {
    let text =
        format!("{BASE}[[profile]]\nname = \"P\"\nevents = [{{ event = \"onBeforeJion\" }}]\n");
    assert_eq!(
        diags(&text),
        ["13:21: error: unknown event `onBeforeJoin`".replace("onBeforeJoin", "onBeforeJion")]
    );
    assert_eq!(
        hints(&text),
        [Some(
            "did you mean `onBeforeJoin`? (`palisade events` lists every event)".to_string()
        )]
    );
}

#[test]
fn packet_on_a_tc_event() {
    let d = on_base("[[profile]]\nname = \"P\"\nevents = [{ event = \"onBeforeJoin\", packet = \"message\" }]\n");
    assert_eq!(
        d,
        ["13:46: error: `packet` applies to JSM events only; `onBeforeJoin` is a TC event"]
    );
}

#[test]
fn unknown_packet_type() {
    let text = format!("{BASE}[[profile]]\nname = \"P\"\nevents = [{{ event = \"es_IN\", packet = \"mesage\" }}]\n");
    assert_eq!(
        diags(&text),
        ["13:39: error: unknown packet type \"mesage\""]
    );
    assert_eq!(
        hints(&text),
        [Some(
            "expected one of all, iq, message, presence, subscription; did you mean `message`?"
                .to_string()
        )]
    );
}

#[test]
fn unknown_handling() {
    let d = on_base(
        "[[profile]]\nname = \"P\"\nevents = [{ event = \"es_IN\", handling = \"block\" }]\n",
    );
    assert_eq!(d, ["13:41: error: unknown handling \"block\""]);
}

#[test]
fn duplicate_event_and_packet_in_one_profile() {
    let d = on_base(
        "[[profile]]\nname = \"P\"\nevents = [\n  { event = \"es_IN\", packet = \"message\" },\n  { event = \"es_IN\", packet = \"iq\" },\n  { event = \"es_IN\", packet = \"message\", handling = \"pass\" },\n]\n",
    );
    assert_eq!(
        d,
        ["16:13: error: `es_IN` for packet `message` is already in profile `P` (line 14)"]
    );
}

#[test]
fn notify_only_event_settings_warn() {
    let d = on_base("[[profile]]\nname = \"P\"\nevents = [{ event = \"onServiceReconfig\", handling = \"bounce\" }]\n");
    assert_eq!(d, ["13:21: warning: `onServiceReconfig` is a notification only: it is always sent fire-and-forget and always passes"]);
    assert!(
        on_base("[[profile]]\nname = \"P\"\nevents = [{ event = \"onServiceReconfig\" }]\n")
            .is_empty()
    );
}

#[test]
fn bounce_with_fire_and_forget_quotes_the_seed_caution() {
    let text = format!("{BASE}[[profile]]\nname = \"P\"\nevents = [{{ event = \"es_OUT\", fire_and_forget = true }}]\n");
    let caution = "If a combination of Bounce, and Fire and Forget is selected, an event to which this applies will be passed to the compliance server and then discarded. This means it will not be processed further by IM and Presence Service. Use this combination with care.";
    assert_eq!(
        diags(&text),
        [format!("13:49: warning: `es_OUT` in profile `P` combines bounce with fire-and-forget: {caution}")]
    );
    assert!(
        load_str(&text, "t").is_ok(),
        "a warning does not make the file invalid"
    );
    let pass = format!("{BASE}[[profile]]\nname = \"P\"\nevents = [{{ event = \"es_OUT\", handling = \"pass\", fire_and_forget = true }}]\n");
    assert!(diags(&pass).is_empty());
}

#[test]
fn priority_naming_an_unknown_profile() {
    let text = format!("{BASE}[[profile]]\nname = \"EthicalWall\"\nevents = [{{ event = \"es_IN\" }}]\n[routing]\npriority = [\"EthicalWal\"]\n");
    assert_eq!(
        diags(&text),
        ["15:13: error: routing priority names unknown profile `EthicalWal`"]
    );
    assert_eq!(
        hints(&text),
        [Some("did you mean `EthicalWall`?".to_string())]
    );
}

#[test]
fn priority_listing_a_profile_twice() {
    let d = on_base("[routing]\npriority = [\n  \"SystemDefaultComplianceProfile\",\n  \"SystemDefaultComplianceProfile\",\n]\n");
    assert_eq!(d, ["14:3: error: profile `SystemDefaultComplianceProfile` is listed twice in the routing priority (first on line 13)"]);
}

#[test]
#[ignore = "slow in debug builds (parses 65536 tables): run with --ignored"]
fn profile_ids_fit_in_u16() {
    let mut text = String::from(BASE);
    for i in 0..=u16::MAX as usize {
        text.push_str(&format!(
            "[[profile]]\nname = \"P{i}\"\nevents = [{{ event = \"es_IN\" }}]\n"
        ));
    }
    let d = diags(&text);
    let line = BASE.lines().count() + 3 * usize::from(u16::MAX) + 2;
    assert_eq!(
        d,
        [format!("{line}:8: error: too many profiles: at most 65535")]
    );
}

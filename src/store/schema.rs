//! Diesel's view of the tables (see `migrations/`).

diesel::table! {
    meta (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    tenants (id) {
        id -> Text,
        origin -> Text,
        max_consent_age_days -> Nullable<BigInt>,
        default_region -> Nullable<Text>,
        require_confirmation_for -> Text,
        evidence_retention_days -> Nullable<BigInt>,
        tree_size -> BigInt,
        head_hash -> Text,
        head_recorded_at -> Nullable<BigInt>,
        created_at -> BigInt,
        languages -> Nullable<Text>,
        ambiguous_messages -> Text,
        reviews_held -> Bool,
    }
}

diesel::table! {
    reviews (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        mode -> Text,
        subject_id -> BigInt,
        group_id -> BigInt,
        opt_out_seq -> Nullable<BigInt>,
        purposes -> Integer,
        captured_at -> BigInt,
        received_at -> BigInt,
        message_sealed -> Text,
        settled_at -> Nullable<BigInt>,
        decision -> Nullable<Text>,
        settled_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    brands (id) {
        id -> BigInt,
        tenant_id -> Text,
        name -> Text,
        name_key -> Text,
        created_at -> BigInt,
        retired_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        roles -> Text,
        key_sha256 -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    subjects (id) {
        id -> BigInt,
        tenant_id -> Text,
        commitment -> Text,
        identity -> Nullable<Text>,
        salt -> Nullable<Text>,
        created_at -> BigInt,
        erased_at -> Nullable<BigInt>,
        group_id -> BigInt,
        closed_at -> Nullable<BigInt>,
        identity_hash -> Nullable<Text>,
        closed_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    consent_texts (tenant_id, sha256) {
        tenant_id -> Text,
        sha256 -> Text,
        body -> Text,
    }
}

diesel::table! {
    entries (tenant_id, seq) {
        tenant_id -> Text,
        seq -> BigInt,
        leaf_hash -> Text,
        canonical_json -> Text,
        subject_id -> BigInt,
        evidence_salt -> Nullable<Text>,
        evidence_jcs -> Nullable<Text>,
        consent_text_sha256 -> Nullable<Text>,
    }
}

diesel::table! {
    consent_events (tenant_id, seq) {
        tenant_id -> Text,
        seq -> BigInt,
        subject_id -> BigInt,
        kind -> Text,
        captured_at -> BigInt,
        channel -> Text,
        purposes -> Integer,
        message_channels -> Integer,
        brand_id -> Nullable<BigInt>,
        company_name_shown -> Nullable<Text>,
        confirmation_required -> Bool,
        confirmation_code_sha256 -> Nullable<Text>,
        confirmation_expires_at -> Nullable<BigInt>,
        confirmed_by -> Nullable<BigInt>,
        lifted_by -> Nullable<BigInt>,
        lift_class -> Nullable<Text>,
        group_id -> BigInt,
    }
}

diesel::table! {
    windows (subject_id, phone_number_id) {
        subject_id -> BigInt,
        phone_number_id -> Text,
        tenant_id -> Text,
        last_inbound_at -> BigInt,
    }
}

diesel::table! {
    legacy_windows (tenant_id, identity, phone_number_id) {
        tenant_id -> Text,
        identity -> Text,
        phone_number_id -> Text,
        last_inbound_at -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (tenant_id, key_id, route, idempotency_key) {
        tenant_id -> Text,
        key_id -> Text,
        route -> Text,
        idempotency_key -> Text,
        request_sha256 -> Text,
        owner -> Text,
        state -> Text,
        response_status -> Nullable<Integer>,
        response_body -> Nullable<Text>,
        subject_id -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    merkle_nodes (tenant_id, level, idx) {
        tenant_id -> Text,
        level -> Integer,
        idx -> BigInt,
        hash -> Binary,
    }
}

diesel::table! {
    signing_keys (id) {
        id -> BigInt,
        tenant_id -> Text,
        verifier_key -> Text,
        seed_sealed -> Text,
        status -> Text,
        first_size -> BigInt,
        last_size -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    checkpoints (id) {
        id -> BigInt,
        tenant_id -> Text,
        size -> BigInt,
        root -> Binary,
        note -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    channel_settings (tenant_id) {
        tenant_id -> Text,
        settings -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    channel_numbers (kind, value) {
        kind -> Text,
        value -> Text,
        tenant_id -> Text,
    }
}

diesel::table! {
    webhook_dedup (tenant_id, key_hash) {
        tenant_id -> Text,
        key_hash -> Text,
        seen_at -> BigInt,
    }
}

diesel::table! {
    subject_aliases (tenant_id, user_id) {
        tenant_id -> Text,
        user_id -> Text,
        e164 -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    dead_letters (id) {
        id -> BigInt,
        tenant_id -> Text,
        provider -> Text,
        reason -> Text,
        phone_number_id -> Nullable<Text>,
        received_at -> BigInt,
        payload_sealed -> Text,
        opt_out -> Bool,
        user_id_hash -> Nullable<Text>,
        resolved_at -> Nullable<BigInt>,
        resolved_seq -> Nullable<BigInt>,
        canonical -> Bool,
    }
}

diesel::joinable!(consent_events -> subjects (subject_id));
diesel::joinable!(entries -> subjects (subject_id));
diesel::joinable!(windows -> subjects (subject_id));
diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::table! {
    suppressions (tenant_id, identity_hash) {
        tenant_id -> Text,
        identity_hash -> Text,
        erased_at -> BigInt,
    }
}

diesel::table! {
    audit_heads (tenant_id) {
        tenant_id -> Text,
        size -> BigInt,
    }
}

diesel::table! {
    audit_events (tenant_id, seq) {
        tenant_id -> Text,
        seq -> BigInt,
        at -> BigInt,
        actor -> Text,
        kind -> Text,
        details -> Text,
    }
}

diesel::table! {
    identity_links (tenant_id, seq) {
        tenant_id -> Text,
        seq -> BigInt,
        subject_id -> BigInt,
        linked_subject_id -> BigInt,
        waba -> Text,
        captured_at -> BigInt,
    }
}

diesel::table! {
    documents (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        sha256 -> Text,
        media_type -> Text,
        size -> BigInt,
        body -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    document_subjects (tenant_id, document_id, subject_id) {
        tenant_id -> Text,
        document_id -> Text,
        subject_id -> BigInt,
    }
}

diesel::table! {
    forms (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    form_versions (tenant_id, form_id, version) {
        tenant_id -> Text,
        form_id -> Text,
        version -> BigInt,
        definition -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    statements (tenant_id, sha256) {
        tenant_id -> Text,
        sha256 -> Text,
        commitment -> Nullable<Text>,
        decided_at -> Text,
        note -> Text,
        received_at -> BigInt,
    }
}

diesel::table! {
    erased_identity_hashes (tenant_id, seq) {
        tenant_id -> Text,
        seq -> BigInt,
        identity_hash -> Text,
        identity_sealed -> Nullable<Text>,
        erased_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    event_endpoints (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        url -> Text,
        types -> Nullable<Text>,
        secret_sealed -> Text,
        created_at -> BigInt,
        next_seq -> BigInt,
    }
}

diesel::table! {
    event_deliveries (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        endpoint_id -> Text,
        seq -> BigInt,
        group_id -> BigInt,
        status -> Text,
        attempts -> Integer,
        created_at -> BigInt,
        next_attempt_at -> BigInt,
        leased_until -> Nullable<BigInt>,
        last_attempt_at -> Nullable<BigInt>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        identities_sealed -> Nullable<Text>,
    }
}

diesel::table! {
    imports (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        mode -> Text,
        format -> Text,
        collector -> Text,
        status -> Text,
        next_line -> BigInt,
        read_lines -> BigInt,
        recorded -> BigInt,
        refused -> BigInt,
        refused_lines -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    entry_points (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        brand -> Text,
        purposes -> Text,
        phrase -> Text,
        prompt -> Text,
        phone_number_id -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    ivr_flows (tenant_id, id, version) {
        tenant_id -> Text,
        id -> Text,
        version -> BigInt,
        definition -> Text,
        created_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    meta,
    tenants,
    brands,
    api_keys,
    subjects,
    consent_texts,
    entries,
    consent_events,
    windows,
    legacy_windows,
    idempotency_keys,
    merkle_nodes,
    signing_keys,
    checkpoints,
    channel_settings,
    channel_numbers,
    webhook_dedup,
    subject_aliases,
    dead_letters,
    suppressions,
    audit_heads,
    audit_events,
    identity_links,
    documents,
    document_subjects,
    forms,
    form_versions,
    reviews,
    statements,
    erased_identity_hashes,
    event_endpoints,
    event_deliveries,
    imports,
    entry_points,
    ivr_flows,
);

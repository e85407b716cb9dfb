//! Client model name to provider model name mapping (`gpt-4o` → `claude-sonnet-4-5`).

/// Maps the model a client asked for to the provider's model.
///
/// Rules, in order: an exact pattern match wins; otherwise patterns ending in `*` match by
/// prefix, the longest prefix winning (ties: first listed), and a lone `*` matches anything;
/// otherwise the client model passes through unchanged.
pub fn map_model(client_model: &str, mapping: &[(String, String)]) -> String {
    if let Some((_, provider_model)) = mapping.iter().find(|(pattern, _)| pattern == client_model) {
        return provider_model.clone();
    }
    let mut best: Option<(usize, &String)> = None;
    for (pattern, provider_model) in mapping {
        let Some(prefix) = pattern.strip_suffix('*') else {
            continue;
        };
        if client_model.starts_with(prefix) && best.is_none_or(|(len, _)| prefix.len() > len) {
            best = Some((prefix.len(), provider_model));
        }
    }
    match best {
        Some((_, provider_model)) => provider_model.clone(),
        None => client_model.to_string(),
    }
}

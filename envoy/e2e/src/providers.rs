//! The three mock providers of the routing configs (`envoy/e2e/configs/routing.yaml`,
//! `routing_walk.yaml`): OpenAI, Anthropic and Gemini, each requiring its own key, and the
//! template variables that point Envoy's provider clusters at them (`OPENAI_PORT`,
//! `OPENAI_KEY`, …).

use crate::mock::{MockHandle, MockOptions, MockProvider};
use crate::Vars;

/// The key the OpenAI mock requires (tollgate sends it from `OPENAI_API_KEY`).
pub const OPENAI_KEY: &str = "sk-proj-e2eOpenAiKeyAbCdEfGhIjKlMnOpQrStUv0123";
/// The key the Anthropic mock requires (`ANTHROPIC_API_KEY`).
pub const ANTHROPIC_KEY: &str = "sk-ant-api03-e2eAnthropicKeyAbCdEfGhIjKlMnOpQr-0123";
/// The key the Gemini mock requires (`GEMINI_API_KEY`).
pub const GEMINI_KEY: &str = "AIzaSyE2eGeminiKeyAbCdEfGhIjKlMnOpQrSt";

/// The three running mock providers.
pub struct Providers {
    /// Requires [`OPENAI_KEY`].
    pub openai: MockHandle,
    /// Requires [`ANTHROPIC_KEY`].
    pub anthropic: MockHandle,
    /// Requires [`GEMINI_KEY`].
    pub gemini: MockHandle,
}

impl Providers {
    /// Starts the three mocks from `options`, each with its provider's key required.
    pub fn start(options: &MockOptions) -> Providers {
        let mock = |key: &str| {
            MockProvider::start(MockOptions {
                required_api_key: Some(key.to_string()),
                ..options.clone()
            })
            .expect("mock provider starts")
        };
        Providers {
            openai: mock(OPENAI_KEY),
            anthropic: mock(ANTHROPIC_KEY),
            gemini: mock(GEMINI_KEY),
        }
    }

    /// The variables of the routing templates: each provider's port and key.
    pub fn vars(&self) -> Vars {
        Vars::new()
            .set("OPENAI_PORT", self.openai.port())
            .set("ANTHROPIC_PORT", self.anthropic.port())
            .set("GEMINI_PORT", self.gemini.port())
            .set("OPENAI_KEY", OPENAI_KEY)
            .set("ANTHROPIC_KEY", ANTHROPIC_KEY)
            .set("GEMINI_KEY", GEMINI_KEY)
    }
}

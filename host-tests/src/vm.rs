//! The VM driver: loads the built module once per process (compiled by wasmtime), instantiates
//! it with every import family linked, and calls the proxy-wasm exports as Envoy would, one
//! method per callback (`configure`, `new_http`, `request_headers`, …), with Envoy's body
//! buffering semantics. Assertions read [`HostState`] back through [`Vm::state`].

use std::path::PathBuf;

use wasmtime::{Engine, Instance, Linker, Module, Store};

use crate::imports;
use crate::state::{
    Action, Headers, HostCalls, HostState, LocalReply, MapKind, SharedHost, StreamState,
};
use crate::util::find_header;

/// Where the built module is: `$TOLLGATE_WASM`, else `target/tollgate.wasm` at the workspace root.
pub fn wasm_path() -> PathBuf {
    if let Ok(p) = std::env::var("TOLLGATE_WASM") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tollgate.wasm")
}

fn compiled_module(engine: &Engine) -> wasmtime::Result<Module> {
    let path = wasm_path();
    Module::from_file(engine, &path).map_err(|e| {
        e.context(format!(
            "loading {} (run `make build` first)",
            path.display()
        ))
    })
}

/// One VM: a module instance with its root context, as one Envoy worker holds it.
pub struct Vm {
    store: Store<HostState>,
    instance: Instance,
    root_id: u32,
    next_context: u32,
}

/// The root context id every VM uses.
pub const ROOT_CONTEXT_ID: u32 = 1;

impl Vm {
    /// Loads the module with fresh shared state.
    pub fn load() -> wasmtime::Result<Self> {
        Self::load_shared(SharedHost::new())
    }

    /// Loads the module sharing `shared` with other VMs (as Envoy workers share it).
    pub fn load_shared(shared: SharedHost) -> wasmtime::Result<Self> {
        use std::sync::OnceLock;
        static ENGINE: OnceLock<(Engine, Module)> = OnceLock::new();
        let (engine, module) = match ENGINE.get() {
            Some(pair) => pair.clone(),
            None => {
                let engine = Engine::default();
                let module = compiled_module(&engine)?;
                let _ = ENGINE.set((engine.clone(), module.clone()));
                (engine, module)
            }
        };
        let mut linker = Linker::new(&engine);
        imports::link_all(&mut linker)?;
        linker.define_unknown_imports_as_traps(&module)?;
        let state = HostState {
            shared,
            now_nanos: 1_750_000_000_000_000_000,
            ..HostState::default()
        };
        let mut store = Store::new(&engine, state);
        let instance = linker.instantiate(&mut store, &module)?;
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            init.call(&mut store, ())?;
        }
        Ok(Self {
            store,
            instance,
            root_id: ROOT_CONTEXT_ID,
            next_context: ROOT_CONTEXT_ID + 1,
        })
    }

    /// Host state, for assertions.
    pub fn state(&self) -> &HostState {
        self.store.data()
    }

    /// Host state, for setup (properties, env, clock).
    pub fn state_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// Shared state handle (metrics, shared data).
    pub fn shared(&self) -> SharedHost {
        self.store.data().shared.clone()
    }

    /// Sets the clock.
    pub fn set_time_secs(&mut self, secs: u64) {
        self.store.data_mut().now_nanos = secs * 1_000_000_000;
    }

    /// Advances the clock.
    pub fn advance_ms(&mut self, ms: u64) {
        self.store.data_mut().now_nanos += ms * 1_000_000;
    }

    /// Host calls counted since the VM was loaded or since the last [`Vm::take_host_calls`].
    pub fn host_calls(&self) -> &HostCalls {
        &self.store.data().host_calls
    }

    /// Returns the host calls counted so far and starts counting from zero: call it before and
    /// after a request to get that request's calls.
    pub fn take_host_calls(&mut self) -> HostCalls {
        std::mem::take(&mut self.store.data_mut().host_calls)
    }

    /// Log lines so far, as one string per line.
    pub fn logs(&self) -> Vec<String> {
        self.store
            .data()
            .logs
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Log lines at error level or above.
    pub fn error_logs(&self) -> Vec<String> {
        self.store
            .data()
            .logs
            .iter()
            .filter(|(l, _)| *l >= 4)
            .map(|(_, m)| m.clone())
            .collect()
    }

    fn call<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        &mut self,
        context: u32,
        name: &str,
        params: P,
    ) -> wasmtime::Result<R> {
        self.store.data_mut().current_context = context;
        let f = self
            .instance
            .get_typed_func::<P, R>(&mut self.store, name)?;
        f.call(&mut self.store, params)
    }

    /// Creates the root context, starts the VM and configures the plugin with `config`.
    /// Returns what `on_configure` returned.
    pub fn configure(&mut self, config: &str) -> wasmtime::Result<bool> {
        let root = self.root_id;
        self.configure_root(root, config)
    }

    /// Adds another plugin to this VM, as Envoy does for every plugin whose `vm_config` is the
    /// same: a root context of its own, started and configured with `config` (the module's
    /// globals are shared). Returns its root context id, `None` when `on_configure` refused.
    pub fn add_plugin(&mut self, config: &str) -> wasmtime::Result<Option<u32>> {
        let root = self.next_context;
        self.next_context += 1;
        Ok(self.configure_root(root, config)?.then_some(root))
    }

    fn configure_root(&mut self, root: u32, config: &str) -> wasmtime::Result<bool> {
        self.store.data_mut().plugin_config = config.as_bytes().to_vec();
        self.call::<(i32, i32), ()>(root, "proxy_on_context_create", (root as i32, 0))?;
        let vm_len = self.store.data().vm_config.len() as i32;
        let started: i32 = self.call(root, "proxy_on_vm_start", (root as i32, vm_len))?;
        if started == 0 {
            return Ok(false);
        }
        let ok: i32 = self.call(
            root,
            "proxy_on_configure",
            (root as i32, config.len() as i32),
        )?;
        Ok(ok != 0)
    }

    /// Delivers a timer tick to the root context.
    pub fn tick(&mut self) -> wasmtime::Result<()> {
        let root = self.root_id;
        self.call::<i32, ()>(root, "proxy_on_tick", root as i32)
    }

    /// Creates a new HTTP context (one request) and returns its id.
    pub fn new_http(&mut self) -> u32 {
        let root = self.root_id;
        self.new_http_in(root)
    }

    /// Creates a new HTTP context (one request) of the plugin whose root context is `root`
    /// (see [`Vm::add_plugin`]) and returns its id.
    pub fn new_http_in(&mut self, root: u32) -> u32 {
        let id = self.next_context;
        self.next_context += 1;
        self.store
            .data_mut()
            .streams
            .insert(id, StreamState::default());
        // A trap here surfaces on the next call; creation itself cannot fail in the SDK.
        let _ =
            self.call::<(i32, i32), ()>(id, "proxy_on_context_create", (id as i32, root as i32));
        id
    }

    fn set_map(&mut self, ctx: u32, kind: MapKind, headers: &[(&str, &str)]) {
        let map = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.store
            .data_mut()
            .streams
            .entry(ctx)
            .or_default()
            .maps
            .insert(kind, map);
    }

    fn action(code: i32) -> Action {
        if code == 0 {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    /// Delivers request headers.
    pub fn request_headers(
        &mut self,
        ctx: u32,
        headers: &[(&str, &str)],
        eos: bool,
    ) -> wasmtime::Result<Action> {
        self.set_map(ctx, MapKind::RequestHeaders, headers);
        let r: i32 = self.call(
            ctx,
            "proxy_on_request_headers",
            (ctx as i32, headers.len() as i32, eos as i32),
        )?;
        Ok(Self::action(r))
    }

    /// Delivers a request body chunk, with Envoy's buffering semantics: after a `Pause` the next
    /// call sees everything buffered so far; on `Continue` the buffer is forwarded.
    pub fn request_body(&mut self, ctx: u32, chunk: &[u8], eos: bool) -> wasmtime::Result<Action> {
        let s = self.store.data_mut().streams.entry(ctx).or_default();
        if s.request_buffering {
            s.request_body.extend_from_slice(chunk);
        } else {
            s.request_body = chunk.to_vec();
        }
        let size = s.request_body.len() as i32;
        let r: i32 = self.call(ctx, "proxy_on_request_body", (ctx as i32, size, eos as i32))?;
        let s = self.store.data_mut().streams.entry(ctx).or_default();
        let action = Self::action(r);
        if action == Action::Continue {
            let body = std::mem::take(&mut s.request_body);
            s.forwarded_request_body.extend(body);
            s.request_buffering = false;
        } else {
            s.request_buffering = true;
        }
        Ok(action)
    }

    /// Delivers response headers.
    pub fn response_headers(
        &mut self,
        ctx: u32,
        headers: &[(&str, &str)],
        eos: bool,
    ) -> wasmtime::Result<Action> {
        self.set_map(ctx, MapKind::ResponseHeaders, headers);
        let r: i32 = self.call(
            ctx,
            "proxy_on_response_headers",
            (ctx as i32, headers.len() as i32, eos as i32),
        )?;
        Ok(Self::action(r))
    }

    /// Delivers a response body chunk (same buffering semantics as [`Vm::request_body`]).
    pub fn response_body(&mut self, ctx: u32, chunk: &[u8], eos: bool) -> wasmtime::Result<Action> {
        let s = self.store.data_mut().streams.entry(ctx).or_default();
        if s.response_buffering {
            s.response_body.extend_from_slice(chunk);
        } else {
            s.response_body = chunk.to_vec();
        }
        let size = s.response_body.len() as i32;
        let r: i32 = self.call(
            ctx,
            "proxy_on_response_body",
            (ctx as i32, size, eos as i32),
        )?;
        let s = self.store.data_mut().streams.entry(ctx).or_default();
        let action = Self::action(r);
        if action == Action::Continue {
            let body = std::mem::take(&mut s.response_body);
            s.forwarded_response_body.extend(body);
            s.response_buffering = false;
        } else {
            s.response_buffering = true;
        }
        Ok(action)
    }

    /// Ends the stream: `on_done`, `on_log`, `on_delete`.
    pub fn finish(&mut self, ctx: u32) -> wasmtime::Result<()> {
        let _: i32 = self.call(ctx, "proxy_on_done", ctx as i32)?;
        self.call::<i32, ()>(ctx, "proxy_on_log", ctx as i32)?;
        self.call::<i32, ()>(ctx, "proxy_on_delete", ctx as i32)?;
        Ok(())
    }

    /// Delivers an HTTP callout response to the context that dispatched `token`.
    pub fn http_call_response(
        &mut self,
        token: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> wasmtime::Result<()> {
        let ctx = self
            .store
            .data()
            .http_calls
            .iter()
            .find(|c| c.token == token)
            .map(|c| c.context_id)
            .unwrap_or(self.root_id);
        let headers: Headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let n = headers.len() as i32;
        self.store.data_mut().call_response = (headers, body.to_vec(), Vec::new());
        self.call::<(i32, i32, i32, i32, i32), ()>(
            ctx,
            "proxy_on_http_call_response",
            (ctx as i32, token as i32, n, body.len() as i32, 0),
        )
    }

    /// Delivers a gRPC callout's answer to the context that dispatched `token`: `status` 0 with
    /// `message` (`proxy_on_grpc_receive`), otherwise the call's failure with that gRPC status
    /// (`proxy_on_grpc_close`, as Envoy reports errors and timeouts).
    pub fn grpc_call_response(
        &mut self,
        token: u32,
        status: u32,
        message: &[u8],
    ) -> wasmtime::Result<()> {
        let ctx = self
            .store
            .data()
            .grpc_calls
            .iter()
            .find(|c| c.token == token)
            .map(|c| c.context_id)
            .unwrap_or(self.root_id);
        if status == 0 {
            self.store.data_mut().grpc_receive = message.to_vec();
            self.call::<(i32, i32, i32), ()>(
                ctx,
                "proxy_on_grpc_receive",
                (ctx as i32, token as i32, message.len() as i32),
            )
        } else {
            self.call::<(i32, i32, i32), ()>(
                ctx,
                "proxy_on_grpc_close",
                (ctx as i32, token as i32, status as i32),
            )
        }
    }

    /// The root context's id (callouts it dispatched carry it).
    pub fn root_id(&self) -> u32 {
        self.root_id
    }

    /// A header of the request as the filter left it.
    pub fn request_header(&self, ctx: u32, name: &str) -> Option<String> {
        self.stream(ctx)
            .and_then(|s| s.maps.get(&MapKind::RequestHeaders))
            .and_then(|m| find_header(m, name).map(str::to_string))
    }

    /// A header of the response as the filter left it.
    pub fn response_header(&self, ctx: u32, name: &str) -> Option<String> {
        self.stream(ctx)
            .and_then(|s| s.maps.get(&MapKind::ResponseHeaders))
            .and_then(|m| find_header(m, name).map(str::to_string))
    }

    /// The stream state of a context.
    pub fn stream(&self, ctx: u32) -> Option<&StreamState> {
        self.store.data().streams.get(&ctx)
    }

    /// The local reply the filter sent on this context, if any.
    pub fn local_reply(&self, ctx: u32) -> Option<&LocalReply> {
        self.stream(ctx).and_then(|s| s.local_reply.as_ref())
    }

    /// A property the filter set on this context.
    pub fn property(&self, ctx: u32, path: &str) -> Option<Vec<u8>> {
        self.stream(ctx)
            .and_then(|s| s.set_properties.get(path).cloned())
    }
}

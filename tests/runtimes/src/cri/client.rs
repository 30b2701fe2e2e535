//! A CRI client over containerd's unix socket: tonic's generic gRPC client with the hand-written
//! prost messages of [`super::messages`], driven by a current-thread tokio runtime (the
//! workspace never enables tokio's multi-thread runtime).
//!
//! Blocking calls for sequential flows; [`Cri::run_all`] sends many requests at once over the
//! one HTTP/2 connection, as a kubelet starting pods in parallel does.

use super::messages::*;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::codec::ProstCodec;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

/// How long one CRI call may take (RunPodSandbox with the reference's dual stack waits for DAD).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A connected CRI client.
pub struct Cri {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    socket: PathBuf,
}

impl std::fmt::Debug for Cri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cri").field("socket", &self.socket).finish()
    }
}

/// A failed CRI call: the method and the gRPC status (or the transport error).
#[derive(Debug, Clone)]
pub struct CriError {
    /// `RunPodSandbox`, ...
    pub method: &'static str,
    /// gRPC code (`None` for a timeout).
    pub code: Option<tonic::Code>,
    /// The runtime's message.
    pub message: String,
}

impl std::fmt::Display for CriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CRI {} failed ({:?}): {}", self.method, self.code, self.message)
    }
}

impl std::error::Error for CriError {}

impl Cri {
    /// Connect to the CRI socket at `socket` (a unix socket path).
    pub fn connect(socket: &Path) -> Result<Cri, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let path = socket.to_path_buf();
        // The URI is never resolved: the connector below dials the unix socket.
        let endpoint = Endpoint::from_static("http://cri.invalid").connect_timeout(Duration::from_secs(5));
        let channel = runtime
            .block_on(endpoint.connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move { tokio::net::UnixStream::connect(path).await.map(hyper_util::rt::TokioIo::new) }
            })))
            .map_err(|e| format!("connect {}: {e}", socket.display()))?;
        Ok(Cri { runtime, channel, socket: socket.to_path_buf() })
    }

    /// One unary call of `runtime.v1.RuntimeService`, as a future (see [`Cri::run_all`]).
    pub fn call<Req, Resp>(&self, method: &'static str, request: Req) -> impl Future<Output = Result<Resp, CriError>>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        async move {
            let fail = |code, message: String| CriError { method, code, message };
            let call = async {
                grpc.ready().await.map_err(|e| fail(Some(tonic::Code::Unavailable), e.to_string()))?;
                let path = PathAndQuery::try_from(format!("/runtime.v1.RuntimeService/{method}"))
                    .map_err(|e| fail(None, e.to_string()))?;
                let codec = ProstCodec::<Req, Resp>::default();
                let response = grpc.unary(tonic::Request::new(request), path, codec).await;
                response.map(tonic::Response::into_inner).map_err(|s| fail(Some(s.code()), s.message().to_string()))
            };
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(result) => result,
                Err(_) => Err(fail(None, format!("no answer within {CALL_TIMEOUT:?}"))),
            }
        }
    }

    /// Run one call to completion.
    pub fn block<T>(&self, call: impl Future<Output = T>) -> T {
        self.runtime.block_on(call)
    }

    /// Run many calls at once (all in flight together) and return their results in order.
    pub fn run_all<T>(&self, calls: Vec<impl Future<Output = T>>) -> Vec<T> {
        self.runtime.block_on(futures::future::join_all(calls))
    }

    /// `Version`.
    pub fn version(&self) -> Result<VersionResponse, CriError> {
        self.block(self.call("Version", VersionRequest { version: "v1".to_string() }))
    }

    /// `Status`.
    pub fn status(&self) -> Result<StatusResponse, CriError> {
        self.block(self.call("Status", StatusRequest { verbose: false }))
    }

    /// The `NetworkReady` condition: (status, reason and message).
    pub fn network_ready(&self) -> Result<(bool, String), CriError> {
        let status = self.status()?;
        let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
        let ready = conditions.iter().find(|c| c.r#type == "NetworkReady");
        Ok(ready.map(|c| (c.status, format!("{}: {}", c.reason, c.message))).unwrap_or((false, "absent".to_string())))
    }

    /// `UpdateRuntimeConfig` with the node's pod CIDRs (comma-separated), as the kubelet sends them.
    pub fn update_pod_cidr(&self, pod_cidr: &str) -> Result<(), CriError> {
        let request = UpdateRuntimeConfigRequest {
            runtime_config: Some(RuntimeConfig {
                network_config: Some(NetworkConfig { pod_cidr: pod_cidr.to_string() }),
            }),
        };
        self.block(self.call::<_, UpdateRuntimeConfigResponse>("UpdateRuntimeConfig", request)).map(|_| ())
    }

    /// `RunPodSandbox`, as a future.
    pub fn run_pod_call(&self, config: &PodSandboxConfig) -> impl Future<Output = Result<String, CriError>> {
        let request = RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
        let call = self.call::<_, RunPodSandboxResponse>("RunPodSandbox", request);
        async move { call.await.map(|r| r.pod_sandbox_id) }
    }

    /// `RunPodSandbox`: the sandbox id.
    pub fn run_pod(&self, config: &PodSandboxConfig) -> Result<String, CriError> {
        self.block(self.run_pod_call(config))
    }

    /// `PodSandboxStatus` (verbose: with containerd's `info`).
    pub fn pod_status(&self, id: &str) -> Result<PodSandboxStatusResponse, CriError> {
        self.block(
            self.call("PodSandboxStatus", PodSandboxStatusRequest { pod_sandbox_id: id.to_string(), verbose: true }),
        )
    }

    /// `StopPodSandbox`, as a future.
    pub fn stop_pod_call(&self, id: &str) -> impl Future<Output = Result<(), CriError>> {
        let call = self.call::<_, Empty>("StopPodSandbox", PodSandboxIdRequest { pod_sandbox_id: id.to_string() });
        async move { call.await.map(|_| ()) }
    }

    /// `StopPodSandbox`.
    pub fn stop_pod(&self, id: &str) -> Result<(), CriError> {
        self.block(self.stop_pod_call(id))
    }

    /// `RemovePodSandbox`, as a future.
    pub fn remove_pod_call(&self, id: &str) -> impl Future<Output = Result<(), CriError>> {
        let call = self.call::<_, Empty>("RemovePodSandbox", PodSandboxIdRequest { pod_sandbox_id: id.to_string() });
        async move { call.await.map(|_| ()) }
    }

    /// `RemovePodSandbox`.
    pub fn remove_pod(&self, id: &str) -> Result<(), CriError> {
        self.block(self.remove_pod_call(id))
    }

    /// `ListPodSandbox` (all).
    pub fn list_pods(&self) -> Result<Vec<PodSandbox>, CriError> {
        self.block(self.call::<_, ListPodSandboxResponse>("ListPodSandbox", ListPodSandboxRequest {})).map(|r| r.items)
    }

    /// `CreateContainer` in sandbox `pod` (made from `sandbox`): the container id.
    pub fn create_container(
        &self,
        pod: &str,
        config: &ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> Result<String, CriError> {
        let request = CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox.clone()),
        };
        self.block(self.call::<_, CreateContainerResponse>("CreateContainer", request)).map(|r| r.container_id)
    }

    /// `StartContainer`.
    pub fn start_container(&self, id: &str) -> Result<(), CriError> {
        let request = ContainerIdRequest { container_id: id.to_string() };
        self.block(self.call::<_, Empty>("StartContainer", request)).map(|_| ())
    }

    /// `ContainerStatus`.
    pub fn container_status(&self, id: &str) -> Result<ContainerStatus, CriError> {
        let request = ContainerStatusRequest { container_id: id.to_string(), verbose: false };
        let response = self.block(self.call::<_, ContainerStatusResponse>("ContainerStatus", request))?;
        response.status.ok_or(CriError { method: "ContainerStatus", code: None, message: "no status".to_string() })
    }

    /// `ExecSync` of `cmd` in container `id`.
    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> Result<ExecSyncResponse, CriError> {
        let request = ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 30,
        };
        self.block(self.call("ExecSync", request))
    }

    /// `StopContainer` (SIGTERM, then SIGKILL after `timeout` seconds).
    pub fn stop_container(&self, id: &str, timeout: i64) -> Result<(), CriError> {
        let request = StopContainerRequest { container_id: id.to_string(), timeout };
        self.block(self.call::<_, Empty>("StopContainer", request)).map(|_| ())
    }

    /// `RemoveContainer`.
    pub fn remove_container(&self, id: &str) -> Result<(), CriError> {
        let request = ContainerIdRequest { container_id: id.to_string() };
        self.block(self.call::<_, Empty>("RemoveContainer", request)).map(|_| ())
    }
}

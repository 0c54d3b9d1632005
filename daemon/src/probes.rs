//! The standard gRPC probes every listener serves: health checking (`grpc.health.v1`) and server
//! reflection (`grpc.reflection.v1` and `v1alpha`), so grpcurl, grpcui, load balancers and any
//! gRPC client can discover and probe Passerelle without its `.proto` files.
//!
//! Both are open to every authenticated role (see [`crate::authz`]): they reveal the service
//! names and message shapes, which are public in the repository anyway, and nothing of the data.

use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::error::Result;

/// The health service's name, as clients ask reflection for it.
const HEALTH: &str = tonic_health::pb::health_server::SERVICE_NAME;
/// The reflection service's own name (v1; v1alpha clients find it under the same listing).
const REFLECTION: &str = tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME;

/// Reports the daemon's services as serving, then as not serving once shutdown starts.
#[derive(Clone)]
pub(crate) struct Health {
    reporter: HealthReporter,
    services: Vec<&'static str>,
    server: tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
}

impl Health {
    /// A health service that reports `services` (and the whole server, `""`) as serving.
    pub(crate) async fn serving(services: Vec<&'static str>) -> Self {
        let reporter = HealthReporter::new();
        reporter.set_service_status("", ServingStatus::Serving).await;
        for service in &services {
            reporter.set_service_status(service, ServingStatus::Serving).await;
        }
        let server = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(reporter.clone()),
        );
        Self { reporter, services, server }
    }

    /// Marks everything not serving, so probes stop routing new work here while in-flight
    /// calls finish, then ends every `Watch` stream (after it has delivered `NOT_SERVING`):
    /// a load balancer watching health must not hold the graceful shutdown open.
    pub(crate) async fn shutting_down(&self) {
        let mut reporter = self.reporter.clone();
        for service in std::iter::once(&"").chain(&self.services) {
            reporter.set_service_status(service, ServingStatus::NotServing).await;
            // Dropping the status sender ends the watchers' streams once they have seen it; a
            // fresh one keeps answering `Check` with NOT_SERVING while the drain lasts.
            reporter.clear_service_status(service).await;
            reporter.set_service_status(service, ServingStatus::NotServing).await;
        }
    }

    /// Adds health checking and reflection (v1 and v1alpha, for older grpcurl) to `router`, whose
    /// own services are `services`: reflection lists those (and the probes) only, not every
    /// service of the `.proto` files, so a node's API does not advertise a hub's services.
    pub(crate) fn add_to(&self, routes: Routes, services: &[&'static str]) -> Result<Routes> {
        let reflection = || {
            let builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(passerelle_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(HEALTH)
                .with_service_name(REFLECTION);
            services.iter().fold(builder, |b, name| b.with_service_name(*name))
        };
        let v1 = reflection().build_v1()?;
        let v1alpha = reflection().build_v1alpha()?;
        Ok(routes.add_service(self.server.clone()).add_service(v1).add_service(v1alpha))
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("services", &self.services).finish_non_exhaustive()
    }
}

//! Every RPC the server exposes, read from the descriptor sets: its service, method and shape.
//! The metrics label calls with it, and the authentication layer tells RPCs from unknown paths.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;

/// The shape of an RPC, as declared in its service descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcKind {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
}

impl RpcKind {
    pub(super) fn as_label(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStream => "client_stream",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
        }
    }

    pub fn is_streaming(self) -> bool {
        self != Self::Unary
    }
}

#[derive(Debug, Clone)]
pub struct MethodInfo {
    pub service: Arc<str>,
    pub method: Arc<str>,
    pub kind: RpcKind,
}

/// Every RPC the server exposes, keyed by HTTP path (`/akig.v1.GeoService/AgentSession`), read
/// from the descriptor sets. Unknown paths are reported under one label so a client sending
/// random paths cannot blow up metric cardinality.
#[derive(Debug, Clone, Default)]
pub struct MethodCatalog {
    by_path: Arc<HashMap<String, MethodInfo>>,
}

impl MethodCatalog {
    pub fn from_descriptor_sets(encoded_sets: &[&[u8]]) -> Result<Self, prost::DecodeError> {
        let mut by_path = HashMap::new();
        for encoded in encoded_sets {
            let set = prost_types::FileDescriptorSet::decode(*encoded)?;
            for file in &set.file {
                let package = file.package();
                for service in &file.service {
                    let full_service: Arc<str> = if package.is_empty() {
                        service.name().into()
                    } else {
                        format!("{package}.{}", service.name()).into()
                    };
                    for method in &service.method {
                        let kind = match (method.client_streaming(), method.server_streaming()) {
                            (false, false) => RpcKind::Unary,
                            (true, false) => RpcKind::ClientStream,
                            (false, true) => RpcKind::ServerStream,
                            (true, true) => RpcKind::BidiStream,
                        };
                        by_path.insert(
                            format!("/{full_service}/{}", method.name()),
                            MethodInfo {
                                service: full_service.clone(),
                                method: method.name().into(),
                                kind,
                            },
                        );
                    }
                }
            }
        }
        Ok(Self {
            by_path: Arc::new(by_path),
        })
    }

    pub fn get(&self, path: &str) -> Option<&MethodInfo> {
        self.by_path.get(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &MethodInfo)> {
        self.by_path
            .iter()
            .map(|(path, info)| (path.as_str(), info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_reads_method_shapes_from_descriptors() {
        let catalog = MethodCatalog::from_descriptor_sets(&[
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        ])
        .expect("descriptor sets decode");
        let check = catalog.get("/grpc.health.v1.Health/Check").expect("Check");
        assert_eq!(check.kind, RpcKind::Unary);
        assert_eq!(&*check.service, "grpc.health.v1.Health");
        let watch = catalog.get("/grpc.health.v1.Health/Watch").expect("Watch");
        assert_eq!(watch.kind, RpcKind::ServerStream);
        let reflection = catalog
            .get("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
            .expect("reflection");
        assert_eq!(reflection.kind, RpcKind::BidiStream);
        assert!(catalog.get("/nope.Service/Method").is_none());
    }
}

"""The HTTP gateway: the Connect protocol (HTTP/JSON, gRPC-Web) over the gRPC services, and the web console."""

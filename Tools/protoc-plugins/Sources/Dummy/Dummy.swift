print("protoc plugins are built as products; run Scripts/generate-protos.sh")

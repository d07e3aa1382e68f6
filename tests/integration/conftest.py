"""Root conftest of the integration tests: everything lives in the framework
package (markers slow/host/nested_only, fixtures vm_factory,
module_vm_factory, guest_assets, nimbus_binary, failure reports)."""

pytest_plugins = ["framework.plugin"]

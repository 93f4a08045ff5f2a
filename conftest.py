pytest_plugins = ["rf_devstack.pytest_plugin"]

from grec.lifecycle.store import configure, tracking_uri


def test_the_tracking_uri_follows_the_state_folder_unless_the_user_sets_one(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("GREC_HOME", str(tmp_path / "a"))
    assert configure() == f"sqlite:///{tmp_path / 'a'}/mlflow/mlflow.db"
    # MLflow exports the URI it is given; a second state folder in the same process must still win
    monkeypatch.setenv("GREC_HOME", str(tmp_path / "b"))
    assert configure() == f"sqlite:///{tmp_path / 'b'}/mlflow/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking_uri() == "http://mlflow.example:5000" and tracking_uri("sqlite:///x.db") == "sqlite:///x.db"

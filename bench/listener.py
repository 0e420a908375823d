"""Benchmark baseline: the LogQS client's event listener, re-implemented with
FastAPI and uvicorn from Debian's packages: the same EventCreateRequest model
and the same bearer check, answering 200 with the callback's JSON."""
import base64
import os
from enum import Enum
from typing import Optional
from uuid import UUID

from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel


class ProcessState(str, Enum):
    ready = "ready"
    queued = "queued"
    processing = "processing"
    finalizing = "finalizing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    archived = "archived"


class ProcessType(str, Enum):
    ingestion = "ingestion"
    ingestion_part = "ingestion_part"
    digestion = "digestion"
    digestion_part = "digestion_part"


class EventCreateRequest(BaseModel):
    previous_state: Optional[ProcessState] = None
    current_state: ProcessState
    process_type: ProcessType
    resource_id: UUID
    workflow_id: Optional[UUID] = None
    hook_id: Optional[UUID] = None
    datastore_id: Optional[UUID] = None
    datastore_endpoint: Optional[str] = None


EXPECTED_SECRET = os.environ.get("LQS_EXPECTED_SECRET")
app = FastAPI()
bearer = HTTPBearer(auto_error=False)


def check(credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)):
    if EXPECTED_SECRET is None:
        return
    if credentials is None:
        raise HTTPException(status_code=401, detail="Authorization header is missing")
    try:
        secret = base64.b64decode(credentials.credentials).decode()
    except Exception:
        raise HTTPException(status_code=401, detail="Invalid authorization token")
    if secret != EXPECTED_SECRET:
        raise HTTPException(status_code=401, detail="Invalid authorization token")


@app.post("/events")
def events(event: EventCreateRequest, _=Depends(check)):
    return {"status": "ok", "resource_id": str(event.resource_id)}

"""The FaceDatabaseService: protobuf in and out, FaceDatabase underneath."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from argus.auth import visible_collections
from argus.errors import InvalidInput, ModelUnavailable
from argus.messages import box_message
from argus.profiles import PROFILES
from argus.proto.facedb.v1 import facedb_pb2 as pb
from argus.proto.facedb.v1 import facedb_pb2_grpc
from argus.services.facedb.database import FaceDatabase, IdentifiedFace, Probe
from argus.services.facedb.storage import CollectionRecord, FaceRecord, SubjectRecord


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _collection(record: CollectionRecord, database: FaceDatabase) -> pb.Collection:
    return pb.Collection(
        name=record.name,
        threshold=database.threshold_of(record),
        profile=record.profile,
        subject_count=record.subject_count,
        face_count=record.face_count,
        created_at=_timestamp(record.created_at),
        pending_profile=record.pending_profile or "",
        reembedded_faces=record.reembedded,
    )


def _face(record: FaceRecord) -> pb.Face:
    return pb.Face(
        face_id=record.id,
        box=box_message(record.box),
        detection_score=record.detection_score,
        face_size=record.face_size,
        sharpness=record.sharpness,
        profile=record.profile,
        models=list(record.models),
        has_crop=record.has_crop,
        created_at=_timestamp(record.created_at),
    )


def _subject(record: SubjectRecord, collection: str) -> pb.Subject:
    metadata = struct_pb2.Struct()
    metadata.update(record.metadata or {})
    return pb.Subject(
        collection=collection,
        subject_id=record.external_id,
        display_name=record.display_name,
        metadata=metadata,
        faces=[_face(face) for face in record.faces],
        created_at=_timestamp(record.created_at),
    )


def _probe(probe: Probe) -> pb.ProbeFace | None:
    if probe.face is None:
        return None
    return pb.ProbeFace(
        box=box_message(probe.face.box), detection_score=probe.face.score, faces_in_image=probe.faces_in_image
    )


def _metadata(request: pb.EnrollRequest) -> dict[str, Any] | None:
    if not request.HasField("metadata"):
        return None
    try:
        return json_format.MessageToDict(request.metadata)
    except ValueError as error:  # NaN or infinite numbers: a Struct may hold them, JSON cannot
        raise InvalidInput(f"metadata must be plain JSON: {error}") from None


def _outcome(face_found: bool, match: bool) -> pb.ProbeOutcome:
    if not face_found:
        return pb.NO_FACE
    return pb.MATCH if match else pb.NO_MATCH


def _identified(face: IdentifiedFace) -> pb.IdentifiedFace:
    return pb.IdentifiedFace(
        box=box_message(face.face.box),
        detection_score=face.face.score,
        unknown=face.unknown,
        candidates=[
            pb.Candidate(
                subject_id=c.subject_id,
                display_name=c.display_name,
                similarity=c.similarity,
                probability=c.probability,
                face_id=c.face_id,
            )
            for c in face.candidates
        ],
    )


class FaceDatabaseServicer(facedb_pb2_grpc.FaceDatabaseServiceServicer):
    def __init__(self, database: FaceDatabase) -> None:
        self.db = database

    def CreateCollection(self, request: pb.CreateCollectionRequest, context: grpc.ServicerContext) -> pb.Collection:
        return _collection(self.db.create_collection(request.name, request.threshold, request.profile), self.db)

    def GetCollection(self, request: pb.GetCollectionRequest, context: grpc.ServicerContext) -> pb.Collection:
        return _collection(self.db.collection(request.name), self.db)

    def ChangeProfile(self, request: pb.ChangeProfileRequest, context: grpc.ServicerContext) -> pb.Collection:
        if not request.profile:
            raise InvalidInput(f"name the profile to change to; known: {', '.join(PROFILES)}")
        return _collection(self.db.change_profile(request.collection, request.profile), self.db)

    def ListProfiles(self, request: pb.ListProfilesRequest, context: grpc.ServicerContext) -> pb.ListProfilesResponse:
        profiles = []
        for profile in PROFILES.values():
            message = pb.Profile(
                name=profile.name,
                summary=profile.summary,
                models=list(profile.models),
                is_default=profile.name == self.db.settings.profile,
            )
            try:
                calibration = self.db.calibrations[profile.name]
            except ModelUnavailable:
                pass
            else:
                message.calibrated = True
                message.threshold = calibration.threshold
                message.model_versions.extend(calibration.models)
            profiles.append(message)
        return pb.ListProfilesResponse(profiles=profiles)

    def ListCollections(
        self, request: pb.ListCollectionsRequest, context: grpc.ServicerContext
    ) -> pb.ListCollectionsResponse:
        visible = visible_collections()
        return pb.ListCollectionsResponse(
            collections=[
                _collection(record, self.db)
                for record in self.db.list_collections()
                if visible is None or record.name in visible
            ]
        )

    def DeleteCollection(
        self, request: pb.DeleteCollectionRequest, context: grpc.ServicerContext
    ) -> pb.DeleteCollectionResponse:
        subjects, faces = self.db.delete_collection(request.name)
        return pb.DeleteCollectionResponse(deleted_subjects=subjects, deleted_faces=faces)

    def Enroll(self, request: pb.EnrollRequest, context: grpc.ServicerContext) -> pb.EnrollResponse:
        enrollment = self.db.enroll(
            request.collection,
            request.subject_id,
            [image.data for image in request.images],
            display_name=request.display_name,
            metadata=_metadata(request),
            take_largest_face=request.take_largest_face,
        )
        return pb.EnrollResponse(
            subject=_subject(enrollment.subject, request.collection),
            face_ids=enrollment.face_ids,
            created_subject=enrollment.created_subject,
        )

    def Verify(self, request: pb.VerifyRequest, context: grpc.ServicerContext) -> pb.VerifyResponse:
        decision = self.db.verify(request.collection, request.subject_id, request.image.data)
        return pb.VerifyResponse(
            outcome=_outcome(decision.face_found, decision.match),
            match=decision.match,
            similarity=decision.similarity,
            threshold=decision.threshold,
            probability=decision.probability,
            probe=_probe(decision.probe),
            best_face_id=decision.best_face_id,
            detail="" if decision.face_found else "no face was found in the probe image",
        )

    def Compare(self, request: pb.CompareRequest, context: grpc.ServicerContext) -> pb.CompareResponse:
        result = self.db.compare(request.image_a.data, request.image_b.data, request.threshold)
        missing = [name for name, probe in (("image_a", result.a), ("image_b", result.b)) if probe.face is None]
        return pb.CompareResponse(
            outcome=_outcome(not missing, result.match),
            match=result.match,
            similarity=result.similarity,
            threshold=result.threshold,
            probability=result.probability,
            face_a=_probe(result.a),
            face_b=_probe(result.b),
            detail=f"no face was found in {' and '.join(missing)}" if missing else "",
        )

    def Identify(self, request: pb.IdentifyRequest, context: grpc.ServicerContext) -> pb.IdentifyResponse:
        result = self.db.identify(request.collection, request.image.data, request.top_k, request.threshold)
        return pb.IdentifyResponse(
            faces=[_identified(face) for face in result.faces],
            faces_found=result.faces_found,
            faces_left_out=result.faces_found - len(result.faces),
            threshold=result.threshold,
            gallery_size=result.gallery_size,
        )

    def GetSubject(self, request: pb.GetSubjectRequest, context: grpc.ServicerContext) -> pb.Subject:
        return _subject(self.db.get_subject(request.collection, request.subject_id), request.collection)

    def ListSubjects(self, request: pb.ListSubjectsRequest, context: grpc.ServicerContext) -> pb.ListSubjectsResponse:
        subjects, token, total = self.db.list_subjects(request.collection, request.page_size, request.page_token)
        return pb.ListSubjectsResponse(
            subjects=[_subject(s, request.collection) for s in subjects], next_page_token=token, total=total
        )

    def DeleteFace(self, request: pb.DeleteFaceRequest, context: grpc.ServicerContext) -> pb.DeleteFaceResponse:
        self.db.delete_face(request.collection, request.face_id)
        return pb.DeleteFaceResponse()

    def DeleteSubject(
        self, request: pb.DeleteSubjectRequest, context: grpc.ServicerContext
    ) -> pb.DeleteSubjectResponse:
        return pb.DeleteSubjectResponse(deleted_faces=self.db.delete_subject(request.collection, request.subject_id))

    def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListAuditEventsResponse:
        page_size = request.page_size or 100
        if not 1 <= page_size <= 1000:
            raise InvalidInput(f"page_size {page_size} is out of range: 1 to 1000, or 0 for 100")
        since = None
        if request.HasField("since"):
            try:
                since = request.since.ToDatetime(tzinfo=UTC)
            except (ValueError, OverflowError) as error:  # nanos or seconds out of the Timestamp's range
                raise InvalidInput(f"since is not a valid timestamp: {error}") from None
        # A named collection has passed the key's collection limit; none named means every one the key may see.
        collections = [request.collection] if request.collection else visible_collections()
        events, token = self.db.audit.list(
            collections=collections, since=since, page_size=page_size, page_token=request.page_token
        )
        return pb.ListAuditEventsResponse(
            events=[
                pb.AuditEvent(
                    event_id=event.event_id,
                    occurred_at=_timestamp(event.occurred_at),
                    action=event.action,
                    key_id=event.key_id,
                    key_name=event.key_name,
                    collection=event.collection,
                    subject_id=event.subject,
                    similarity=event.similarity,
                    threshold=event.threshold,
                    decision=event.decision,
                    detail=event.detail,
                    count=event.count,
                )
                for event in events
            ],
            next_page_token=token,
        )

    def PruneAuditEvents(
        self, request: pb.PruneAuditEventsRequest, context: grpc.ServicerContext
    ) -> pb.PruneAuditEventsResponse:
        if request.older_than_days < 1:
            raise InvalidInput("older_than_days must be at least 1")
        # Capped at 1,000 years: the same answer (no event is that old) without a date before year 1 (OverflowError).
        cutoff = datetime.now(UTC) - timedelta(days=min(request.older_than_days, 365_000))
        return pb.PruneAuditEventsResponse(deleted=self.db.audit.prune(cutoff, visible_collections()))

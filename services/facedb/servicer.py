"""The FaceDatabaseService: protobuf in and out, FaceDatabase underneath. It only translates: each request is
checked (requests.py) and turned into plain values, the acting API key into the audit trail's Actor, and the
domain's answer into the reply."""

from __future__ import annotations

from typing import cast

import grpc

from argus.auth import current_key, visible_collections
from argus.messages import MAX_OUTCOMES_BYTES, PHOTO_OUTCOMES_KEY, box_message, box_tuple
from argus.proto.facedb.v1 import facedb_pb2 as pb
from argus.proto.facedb.v1 import facedb_pb2_grpc
from argus.services.facedb import requests
from argus.services.facedb.audit import NO_KEY, Actor
from argus.services.facedb.database import (
    Decision,
    EnrollPhoto,
    EnrollRefused,
    FaceDatabase,
    IdentifiedFace,
    PhotoOutcome,
    PhotoStatus,
    Probe,
    ProfileStatus,
    quality_detail,
)
from argus.services.facedb.quality import QualityVerdict
from argus.services.facedb.storage import AuditRecord, CollectionRecord, FaceRecord, SubjectRecord

_PHOTO_STATUS: dict[str, pb.PhotoStatus] = {
    status.value: cast("pb.PhotoStatus", pb.PhotoStatus.Value(f"PHOTO_{status.name}")) for status in PhotoStatus
}


def _collection(record: CollectionRecord, database: FaceDatabase) -> pb.Collection:
    return pb.Collection(
        name=record.name,
        threshold=database.threshold_of(record),
        profile=record.profile,
        subject_count=record.subject_count,
        face_count=record.face_count,
        created_at=record.created_at,
        pending_profile=record.pending_profile or "",
        reembedded_faces=record.reembedded,
        require_liveness=record.require_liveness,
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
        created_at=record.created_at,
        origin=record.origin,
    )


def _subject(record: SubjectRecord, collection: str) -> pb.Subject:
    return pb.Subject(
        collection=collection,
        subject_id=record.external_id,
        display_name=record.display_name,
        metadata=record.metadata,
        faces=[_face(face) for face in record.faces],
        created_at=record.created_at,
    )


def _quality(verdict: QualityVerdict | None) -> pb.FaceQuality | None:
    if verdict is None:
        return None
    return pb.FaceQuality(
        face_size=verdict.face_size,
        sharpness=verdict.sharpness,
        detection_score=verdict.detection_score,
        yaw=verdict.yaw,
        pitch=verdict.pitch,
        below=verdict.below,
    )


def _probe(probe: Probe, liveness_threshold: float = 0.0, quality: QualityVerdict | None = None) -> pb.ProbeFace | None:
    if probe.face is None:
        return None
    return pb.ProbeFace(
        box=box_message(probe.face.box),
        detection_score=probe.face.score,
        faces_in_image=probe.faces_in_image,
        liveness=probe.face.liveness,
        liveness_threshold=liveness_threshold,
        quality=_quality(quality),
    )


def _photo(outcome: PhotoOutcome) -> pb.PhotoOutcome:
    return pb.PhotoOutcome(
        index=outcome.index,
        status=_PHOTO_STATUS[outcome.status.value],
        face_id=outcome.face_id,
        detail=outcome.detail,
        candidate_boxes=[box_message(box) for box in outcome.candidates],
        box=box_message(outcome.box) if outcome.box is not None else None,
    )


def _actor() -> Actor:
    """The API key of the call being served, as the server's auth interceptor found it."""
    key = current_key.get()
    return Actor(key.key_id, key.name) if key else NO_KEY


def _profile(status: ProfileStatus) -> pb.Profile:
    profile, calibration = status.profile, status.calibration
    message = pb.Profile(
        name=profile.name, summary=profile.summary, models=list(profile.models), is_default=status.is_default
    )
    if calibration is not None:
        message.calibrated = True
        message.threshold = calibration.threshold
        message.model_versions.extend(calibration.models)
    return message


def _audit_event(event: AuditRecord) -> pb.AuditEvent:
    return pb.AuditEvent(
        event_id=event.event_id,
        occurred_at=event.occurred_at,
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
        decision_id=event.decision_id,
    )


def _outcome(face_found: bool, match: bool, spoof: bool = False, low_quality: bool = False) -> pb.ProbeOutcome:
    if not face_found:
        return pb.NO_FACE
    if spoof:
        return pb.SPOOF
    if low_quality:
        return pb.LOW_QUALITY
    return pb.MATCH if match else pb.NO_MATCH


def _verify_detail(decision: Decision) -> str:
    face = decision.probe.face
    if face is None:
        return "no face was found in the probe image"
    if decision.spoof:
        return (
            f"the face looks like a print or a screen (liveness {face.liveness or 0.0:.2f}, below "
            f"{decision.liveness_threshold:.2f}): nothing was compared"
        )
    if decision.low_quality and decision.quality is not None:
        return quality_detail(decision.quality)
    if decision.vetoed:
        return "the probe is closer to a face rejected as an impostor of this subject than to its template"
    if decision.template_faces == 0:
        return "the subject has no face enrolled: nothing to compare with"
    return ""


def _identified(face: IdentifiedFace) -> pb.IdentifiedFace:
    return pb.IdentifiedFace(
        box=box_message(face.face.box),
        detection_score=face.face.score,
        unknown=face.unknown,
        spoof=face.spoof,
        liveness=face.face.liveness,
        low_quality=face.low_quality,
        quality=_quality(face.quality),
        decision_id=face.decision_id,
        candidates=[
            pb.Candidate(
                subject_id=c.subject_id,
                display_name=c.display_name,
                similarity=c.similarity,
                probability=c.probability,
                face_id=c.face_id,
                threshold=c.threshold,
                template_faces=c.template_faces,
            )
            for c in face.candidates
        ],
    )


def outcomes_trailer(photos: list[PhotoOutcome]) -> bytes:
    """Every photo's outcome as the trailer of a refused Enroll, within MAX_OUTCOMES_BYTES: the candidate boxes and
    then the words go first when they do not fit; nothing when even the statuses do not."""
    outcomes = pb.EnrollResponse(photos=[_photo(outcome) for outcome in photos])
    for shorten in ("candidate_boxes", "detail"):
        encoded = outcomes.SerializeToString()
        if len(encoded) <= MAX_OUTCOMES_BYTES:
            return encoded
        for outcome in outcomes.photos:
            outcome.ClearField(shorten)
    encoded = outcomes.SerializeToString()
    return encoded if len(encoded) <= MAX_OUTCOMES_BYTES else b""


def _photos(request: pb.EnrollRequest, limit: int) -> list[EnrollPhoto]:
    """`images` (the call's choice of face) then `photos` (each with its own)."""
    photos = [EnrollPhoto(image.data) for image in request.images]
    for photo in request.photos:
        chosen = requests.face_box(*box_tuple(photo.face_box)) if photo.HasField("face_box") else None
        photos.append(EnrollPhoto(photo.image.data, chosen, photo.take_largest_face))
    return requests.enroll_photos(photos, limit=limit)


class FaceDatabaseServicer(facedb_pb2_grpc.FaceDatabaseServiceServicer):
    def __init__(self, database: FaceDatabase) -> None:
        self.db = database

    def CreateCollection(self, request: pb.CreateCollectionRequest, context: grpc.ServicerContext) -> pb.Collection:
        name = requests.collection_name(request.name)
        record = self.db.create_collection(
            name, requests.threshold(request.threshold), request.profile, require_liveness=request.require_liveness
        )
        return _collection(record, self.db)

    def GetCollection(self, request: pb.GetCollectionRequest, context: grpc.ServicerContext) -> pb.Collection:
        return _collection(self.db.collection(request.name), self.db)

    def UpdateCollection(self, request: pb.UpdateCollectionRequest, context: grpc.ServicerContext) -> pb.Collection:
        require_liveness = request.require_liveness if request.HasField("require_liveness") else None
        return _collection(
            self.db.update_collection(request.name, require_liveness=require_liveness, actor=_actor()), self.db
        )

    def ChangeProfile(self, request: pb.ChangeProfileRequest, context: grpc.ServicerContext) -> pb.Collection:
        record = self.db.change_profile(request.collection, requests.profile(request.profile), actor=_actor())
        return _collection(record, self.db)

    def ListProfiles(self, request: pb.ListProfilesRequest, context: grpc.ServicerContext) -> pb.ListProfilesResponse:
        return pb.ListProfilesResponse(profiles=[_profile(status) for status in self.db.profiles()])

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
        subjects, faces = self.db.delete_collection(request.name, actor=_actor())
        return pb.DeleteCollectionResponse(deleted_subjects=subjects, deleted_faces=faces)

    def Enroll(self, request: pb.EnrollRequest, context: grpc.ServicerContext) -> pb.EnrollResponse:
        settings = self.db.settings
        subject_id = requests.subject_id(request.subject_id)
        metadata = requests.metadata(
            request.metadata if request.HasField("metadata") else None,
            max_bytes=settings.max_metadata_bytes,
            max_depth=settings.max_metadata_depth,
        )
        try:
            enrollment = self.db.enroll(
                request.collection,
                subject_id,
                _photos(request, settings.max_images_per_request),
                display_name=requests.display_name(request.display_name),
                metadata=metadata,
                take_largest_face=request.take_largest_face,
                liveness=requests.liveness(request.liveness),
                all_or_nothing=requests.all_or_nothing(request.mode),
                actor=_actor(),
            )
        except EnrollRefused as refused:
            trailer = outcomes_trailer(refused.photos)
            if trailer:
                context.set_trailing_metadata(((PHOTO_OUTCOMES_KEY, trailer),))
            raise
        return pb.EnrollResponse(
            subject=_subject(enrollment.subject, request.collection) if enrollment.subject else None,
            face_ids=enrollment.face_ids,
            created_subject=enrollment.created_subject,
            photos=[_photo(outcome) for outcome in enrollment.photos],
            warnings=[
                pb.EnrollWarning(
                    photo_index=w.photo_index,
                    subject_id=w.subject_id,
                    display_name=w.display_name,
                    similarity=w.similarity,
                    threshold=w.threshold,
                )
                for w in enrollment.warnings
            ],
        )

    def Verify(self, request: pb.VerifyRequest, context: grpc.ServicerContext) -> pb.VerifyResponse:
        subject_id = requests.subject_id(request.subject_id)
        decision = self.db.verify(
            request.collection,
            subject_id,
            request.image.data,
            liveness=requests.liveness(request.liveness),
            quality=requests.quality_filter(request.quality_filter),
            actor=_actor(),
        )
        return pb.VerifyResponse(
            outcome=_outcome(decision.face_found, decision.match, decision.spoof, decision.low_quality),
            match=decision.match,
            similarity=decision.similarity,
            threshold=decision.threshold,
            probability=decision.probability,
            probe=_probe(decision.probe, decision.liveness_threshold, decision.quality),
            best_face_id=decision.best_face_id,
            detail=_verify_detail(decision),
            decision_id=decision.decision_id,
            template_faces=decision.template_faces,
        )

    def Compare(self, request: pb.CompareRequest, context: grpc.ServicerContext) -> pb.CompareResponse:
        threshold = requests.threshold(request.threshold)
        result = self.db.compare(request.image_a.data, request.image_b.data, threshold)
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
        top_k, threshold = requests.top_k(request.top_k), requests.threshold(request.threshold)
        result = self.db.identify(
            request.collection,
            request.image.data,
            top_k,
            threshold,
            liveness=requests.liveness(request.liveness),
            quality=requests.quality_filter(request.quality_filter),
            actor=_actor(),
        )
        return pb.IdentifyResponse(
            faces=[_identified(face) for face in result.faces],
            faces_found=result.faces_found,
            faces_left_out=result.faces_found - len(result.faces),
            threshold=result.threshold,
            gallery_size=result.gallery_size,
            subjects_searched=result.subjects,
        )

    def ConfirmDecision(
        self, request: pb.ConfirmDecisionRequest, context: grpc.ServicerContext
    ) -> pb.ConfirmDecisionResponse:
        feedback = self.db.confirm_decision(
            request.collection,
            requests.decision_id(request.decision_id),
            requests.optional_subject_id(request.subject_id),
            actor=_actor(),
        )
        return pb.ConfirmDecisionResponse(
            added=feedback.added,
            face_id=feedback.face_id,
            retired_face_id=feedback.retired_face_id,
            detail=feedback.detail,
            subject_id=feedback.subject_id,
        )

    def RejectDecision(
        self, request: pb.RejectDecisionRequest, context: grpc.ServicerContext
    ) -> pb.RejectDecisionResponse:
        feedback = self.db.reject_decision(
            request.collection,
            requests.decision_id(request.decision_id),
            requests.optional_subject_id(request.subject_id),
            actor=_actor(),
        )
        return pb.RejectDecisionResponse(subject_id=feedback.subject_id, impostor_examples=feedback.impostor_examples)

    def GetSubject(self, request: pb.GetSubjectRequest, context: grpc.ServicerContext) -> pb.Subject:
        subject_id = requests.subject_id(request.subject_id)
        return _subject(self.db.get_subject(request.collection, subject_id), request.collection)

    def ListSubjects(self, request: pb.ListSubjectsRequest, context: grpc.ServicerContext) -> pb.ListSubjectsResponse:
        page_size, after = requests.subjects_page(request.page_size, request.page_token)
        page = self.db.list_subjects(request.collection, page_size, after, requests.subjects_query(request.query))
        return pb.ListSubjectsResponse(
            subjects=[_subject(s, request.collection) for s in page.subjects],
            next_page_token=requests.subjects_token(page.after),
            total=page.total,
        )

    def GetFaceCrop(self, request: pb.GetFaceCropRequest, context: grpc.ServicerContext) -> pb.FaceCrop:
        max_side = requests.face_crop_side(request.max_side)
        image = self.db.face_crop(request.collection, request.face_id, max_side)
        return pb.FaceCrop(face_id=request.face_id, image=image, mime_type="image/jpeg")

    def DeleteFace(self, request: pb.DeleteFaceRequest, context: grpc.ServicerContext) -> pb.DeleteFaceResponse:
        self.db.delete_face(request.collection, request.face_id, actor=_actor())
        return pb.DeleteFaceResponse()

    def DeleteSubject(
        self, request: pb.DeleteSubjectRequest, context: grpc.ServicerContext
    ) -> pb.DeleteSubjectResponse:
        subject_id = requests.subject_id(request.subject_id)
        return pb.DeleteSubjectResponse(
            deleted_faces=self.db.delete_subject(request.collection, subject_id, actor=_actor())
        )

    def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListAuditEventsResponse:
        page_size, before = requests.audit_page(request.page_size, request.page_token)
        since, until = requests.time_range(
            requests.moment("since", request.since if request.HasField("since") else None),
            requests.moment("until", request.until if request.HasField("until") else None),
        )
        # A named collection has passed the key's collection limit; none named means every one the key may see.
        collections = [request.collection] if request.collection else visible_collections()
        events, next_before = self.db.audit.list(
            collections=collections,
            since=since,
            until=until,
            key=requests.audit_filter("key", request.key),
            decision=requests.audit_filter("decision", request.decision),
            action=requests.audit_filter("action", request.action),
            page_size=page_size,
            before=before,
        )
        return pb.ListAuditEventsResponse(
            events=[_audit_event(event) for event in events], next_page_token=requests.audit_token(next_before)
        )

    def PruneAuditEvents(
        self, request: pb.PruneAuditEventsRequest, context: grpc.ServicerContext
    ) -> pb.PruneAuditEventsResponse:
        days = requests.older_than_days(request.older_than_days)
        return pb.PruneAuditEventsResponse(deleted=self.db.audit.prune_days(days, visible_collections()))
